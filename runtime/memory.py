"""In-memory partition stores with the RocksDB store's interface, for tests.

A dict plus its keys kept sorted as bytes, so scans run in the same order
as RocksDB's (``memory://`` stores that iterate in insertion or str order
hid issue #12's ordering bug).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator

from runtime.keys import CHECKPOINT_KEY, decode_offset, encode_offset
from runtime.transaction import PartitionTransaction
from runtime.types import StoreClosedError, Updates

__all__ = ["MemoryPartitionStore", "MemoryStore"]


class MemoryPartitionStore:
    """One partition's data in a dict; see :class:`runtime.types.StorePartition`."""

    def __init__(self, partition: int = 0, data: dict[bytes, bytes] | None = None) -> None:
        self._partition = partition
        self._data = {} if data is None else data
        self._keys = sorted(self._data)
        self._closed = False

    @property
    def partition(self) -> int:
        return self._partition

    @property
    def closed(self) -> bool:
        return self._closed

    def _check(self) -> None:
        if self._closed:
            raise StoreClosedError(f"partition {self._partition} is closed")

    def get(self, key: bytes) -> bytes | None:
        self._check()
        return self._data.get(key)

    def iter_range(self, lower: bytes, upper: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        self._check()
        begin = bisect_left(self._keys, lower)
        end = len(self._keys) if upper is None else bisect_left(self._keys, upper)
        return iter([(k, self._data[k]) for k in self._keys[begin:end]])  # a snapshot

    def write(self, updates: Updates, checkpoint: int | None) -> None:
        self._check()
        if checkpoint is not None:
            updates = {**updates, CHECKPOINT_KEY: encode_offset(checkpoint)}
        for key, value in updates.items():
            if value is None:
                if self._data.pop(key, None) is not None:
                    del self._keys[bisect_left(self._keys, key)]
            else:
                if key not in self._data:
                    insort(self._keys, key)
                self._data[key] = value

    def checkpoint(self) -> int | None:
        raw = self.get(CHECKPOINT_KEY)
        return None if raw is None else decode_offset(raw)

    def begin(self) -> PartitionTransaction:
        self._check()
        return PartitionTransaction(self)

    def close(self) -> None:
        self._closed = True


class MemoryStore:
    """Partitions in memory; data survives revoke/assign like files on disk."""

    def __init__(self) -> None:
        self._disk: dict[int, dict[bytes, bytes]] = {}
        self._open: dict[int, MemoryPartitionStore] = {}

    @property
    def partitions(self) -> dict[int, MemoryPartitionStore]:
        return dict(self._open)

    def assign(self, partition: int) -> MemoryPartitionStore:
        if partition in self._open:
            raise ValueError(f"partition {partition} is already assigned")
        store = MemoryPartitionStore(partition, self._disk.setdefault(partition, {}))
        self._open[partition] = store
        return store

    def revoke(self, partition: int) -> None:
        store = self._open.pop(partition, None)
        if store is not None:
            store.close()

    def close(self) -> None:
        for partition in list(self._open):
            self.revoke(partition)
