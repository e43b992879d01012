"""Partition stores on RocksDB (rocksdict), one DB per assigned partition.

Keyspaces share one DB, told apart by the key's first byte (runtime.keys),
not by column families: one memtable per partition instead of one per
keyspace (at most ``write_buffer_bytes`` x 2 per partition),
one write batch without column-family handles, open/reopen about twice as
fast (measured: 19-22 ms vs 36-48 ms with 4 families), and no extra handle
objects that keep a closed DB locked. One ``rocksdict.Cache`` (block cache)
and one ``WriteBufferManager`` are shared by all partitions of a ``Store``,
so memory does not grow with the number of assigned partitions: RocksDB's
memory is bounded by ``cache_bytes`` (blocks) plus ``MEMTABLE_BUDGET`` x
``write_buffer_bytes`` (the memtables of all partitions together: when they
reach 90 % of it the partition being written flushes its memtable). Without
the shared budget each partition could hold two full memtables: 8 partitions
x 2 x 4 MiB = 64 MiB, growing with every partition a worker takes over
(bench/soak.py).

Writes keep RocksDB's WAL without fsync per batch: a process crash loses
nothing written; a machine crash can lose the last batches but never
splits one (data and checkpoint are in the same batch), and restore
replays the changelog from the checkpoint that survived.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from rocksdict import (
    BlockBasedOptions,
    Cache,
    DBCompressionType,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteBufferManager,
)

from runtime.keys import CHECKPOINT_KEY, decode_offset, encode_offset
from runtime.transaction import PartitionTransaction
from runtime.types import StoreClosedError, Updates

__all__ = ["MEMTABLE_BUDGET", "PartitionStore", "Store", "rocksdb_options"]

MIB = 2**20
# The memtables of all partitions of a Store together: this many write buffers.
MEMTABLE_BUDGET = 4


def rocksdb_options(cache: Cache, write_buffer_bytes: int = 4 * MIB,
                    write_buffers: WriteBufferManager | None = None) -> Options:
    """Options of one partition's DB: raw bytes, small memtables, shared
    cache and (``write_buffers``) a memtable budget shared with other DBs."""
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_write_buffer_size(write_buffer_bytes)
    options.set_max_write_buffer_number(2)
    options.set_target_file_size_base(4 * write_buffer_bytes)
    options.set_compression_type(DBCompressionType.lz4())
    options.set_keep_log_file_num(2)
    options.set_max_open_files(256)
    if write_buffers is not None:
        options.set_write_buffer_manager(write_buffers)
    table = BlockBasedOptions()
    table.set_block_cache(cache)
    table.set_cache_index_and_filter_blocks(True)  # counted in the cache's bound
    table.set_bloom_filter(10, False)  # point gets of contacts
    options.set_block_based_table_factory(table)
    return options


class PartitionStore:
    """One assigned partition's RocksDB; see :class:`runtime.types.StorePartition`."""

    def __init__(self, path: Path | str, options: Options, partition: int = 0) -> None:
        self._path = Path(path)
        self._partition = partition
        self._path.mkdir(parents=True, exist_ok=True)
        self._db: Rdict | None = Rdict(str(self._path), options)

    @property
    def partition(self) -> int:
        return self._partition

    @property
    def path(self) -> Path:
        return self._path

    @property
    def closed(self) -> bool:
        return self._db is None

    def _open_db(self) -> Rdict:
        if self._db is None:
            raise StoreClosedError(f"partition {self._partition} is closed")
        return self._db

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._open_db().get(key)
        return value

    def iter_range(self, lower: bytes, upper: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        db = self._open_db()
        read = ReadOptions()
        if upper is not None:
            read.set_iterate_upper_bound(upper)
        items = db.items(from_key=lower, read_opt=read)
        try:
            yield from items
        finally:
            del items  # an iterator keeps the DB open (and locked) until dropped

    def write(self, updates: Updates, checkpoint: int | None) -> None:
        """One ``WriteBatch``: the updates and the checkpoint, atomically."""
        db = self._open_db()
        batch = WriteBatch(raw_mode=True)
        for key, value in updates.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        if checkpoint is not None:
            batch.put(CHECKPOINT_KEY, encode_offset(checkpoint))
        if not batch.is_empty():
            db.write(batch)

    def checkpoint(self) -> int | None:
        raw = self.get(CHECKPOINT_KEY)
        return None if raw is None else decode_offset(raw)

    def begin(self) -> PartitionTransaction:
        self._open_db()
        return PartitionTransaction(self)

    def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            db.close()


class Store:
    """The partition stores of one worker under ``path``: ``path/p<partition>``.

    One block cache for all partitions (``cache_bytes``), memtables of
    ``write_buffer_bytes`` (x2) per partition within one budget for all of
    them, ``MEMTABLE_BUDGET`` x ``write_buffer_bytes`` (see the module doc).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        cache_bytes: int = 8 * MIB,
        write_buffer_bytes: int = 4 * MIB,
    ) -> None:
        self._path = Path(path)
        self._write_buffer_bytes = write_buffer_bytes
        self.cache = Cache(cache_bytes)
        # A soft limit (no write stalls): flushes start at 90 % of it.
        self.write_buffers = WriteBufferManager(MEMTABLE_BUDGET * write_buffer_bytes, False)
        self._open: dict[int, PartitionStore] = {}

    @property
    def partitions(self) -> dict[int, PartitionStore]:
        return dict(self._open)

    def assign(self, partition: int) -> PartitionStore:
        """Open (or create) the partition's DB; its data survives revoke."""
        if partition in self._open:
            raise ValueError(f"partition {partition} is already assigned")
        options = rocksdb_options(self.cache, self._write_buffer_bytes, self.write_buffers)
        store = PartitionStore(self._path / f"p{partition}", options, partition)
        self._open[partition] = store
        return store

    def revoke(self, partition: int) -> None:
        """Close the partition's DB (files stay for a later assign)."""
        store = self._open.pop(partition, None)
        if store is not None:
            store.close()

    def local_checkpoints(self) -> dict[int, int]:
        """{partition: checkpoint} of the local copies on disk that are not
        open (each is opened briefly to read it)."""
        found: dict[int, int] = {}
        if not self._path.is_dir():
            return found
        for path in self._path.iterdir():
            name = path.name
            if not (path.is_dir() and name.startswith("p") and name[1:].isdigit()):
                continue
            partition = int(name[1:])
            if partition in self._open:
                continue
            store = self.assign(partition)
            try:
                checkpoint = store.checkpoint()
            finally:
                self.revoke(partition)
            if checkpoint is not None:
                found[partition] = checkpoint
        return found

    def close(self) -> None:
        for partition in list(self._open):
            self.revoke(partition)
