"""Ordered, resumable scans over the keys one partition holds in a table.

Go-live backfills and due-index rebuilds must visit every contact of a
partition in chunks, resuming where the previous chunk stopped. RocksDB keeps
one database per partition with sorted keys, so a chunk is a seek plus a
short iteration. The in-memory store (throwaway runs) mixes partitions in
one dict, so there the partition is recomputed from the key.

One order everywhere: RocksDB sorts the *encoded* keys bytewise, and that
is not Python's ``str`` order (JSON escapes ``"``, ``\\`` and control
characters, and the closing quote sorts after ``' '`` and ``'!'``: ``'a"b' <
'aA'`` but ``b'"a\\"b"' > b'"aA"'``). So every scan, resume cursor and merge
with a write-behind overlay compares ``encode_key(key)``, in both stores.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from faust.types import TableT

from agents.partitioning import partition_for

__all__ = ["encode_key", "keys_in_chunk", "scan_partition", "scan_prefix"]


def encode_key(key: str) -> bytes:
    """A table key as Faust stores it (its ``json`` key serializer, orjson),
    and so the key's place in a partition's RocksDB. Sort and compare keys
    by this, never as ``str``."""
    return orjson.dumps(key)


def keys_in_chunk(scanned: list[str], extra: Iterable[str], after: str | None,
                  complete: bool) -> list[str]:
    """The keys one chunk of a resumable scan covers: the ``scanned`` ones
    (a ``scan_partition`` result) plus the keys of ``extra`` (e.g. written
    by the current batch, not in the store yet) that fall in the chunk's
    range: past ``after`` and, unless the scan is complete, up to the last
    scanned key; in store order, so the last one is the next cursor."""
    low = encode_key(after) if after is not None else None
    high = None if complete or not scanned else encode_key(scanned[-1])
    found = set(scanned)
    for key in extra:
        encoded = encode_key(key)
        if (low is None or encoded > low) and (high is None or encoded <= high):
            found.add(key)
    return sorted(found, key=encode_key)


def scan_partition(
    table: TableT, partition: int, partitions: int, after: str | None, limit: int
) -> list[tuple[str, bytes]]:
    """Up to ``limit`` (key, value) pairs of ``partition`` with key > ``after``,
    in a stable order, so that ``after=last key`` resumes the scan."""
    from agents.buffered_tables import BufferedTable

    if isinstance(table, BufferedTable):  # scans read what the store holds
        table = table.table
    store: Any = table.data
    if hasattr(store, "_db_for_partition"):
        return _scan_rocksdb(store, partition, after, limit)
    return _scan_memory(table, partition, partitions, after, limit)


def _scan_rocksdb(
    store: Any, partition: int, after: str | None, limit: int
) -> list[tuple[str, bytes]]:
    db = store._db_for_partition(partition)
    # Keys are stored JSON-encoded; resume from the encoded cursor.
    cursor = encode_key(after) if after is not None else None
    items = db.items(from_key=cursor) if cursor is not None else db.items()
    found: list[tuple[str, bytes]] = []
    for raw_key, value in items:
        if raw_key == store.offset_key or (cursor is not None and raw_key <= cursor):
            continue
        found.append((orjson.loads(raw_key), value))
        if len(found) >= limit:
            break
    return found


def _scan_memory(
    table: TableT, partition: int, partitions: int, after: str | None, limit: int
) -> list[tuple[str, bytes]]:
    cursor = encode_key(after) if after is not None else None
    keys = sorted(
        (k for k in table
         if partition_for(k, partitions) == partition
         and (cursor is None or encode_key(k) > cursor)),
        key=encode_key,
    )[:limit]
    return [(k, table[k]) for k in keys]


def scan_prefix(table: Any, partition: int, prefix: str) -> list[str]:
    """Every key of ``partition`` starting with ``prefix``, in store order, including
    the writes of a write-behind table's current batch."""
    from agents.buffered_tables import _DELETED, BufferedTable

    overlay: dict[str, Any] = {}
    if isinstance(table, BufferedTable):
        overlay = {k: v for k, v in table.overlay.items() if k.startswith(prefix)}
        table = table.table
    store: Any = table.data
    if hasattr(store, "_db_for_partition"):
        db = store._db_for_partition(partition)
        start = encode_key(prefix)[:-1]  # the encoded key without its closing quote
        keys = set()
        for raw_key in db.keys(from_key=start):
            if not raw_key.startswith(start):
                break
            keys.add(orjson.loads(raw_key))
    else:
        keys = {k for k in table if k.startswith(prefix)}
    keys.update(k for k, v in overlay.items() if v is not _DELETED)
    keys.difference_update(k for k, v in overlay.items() if v is _DELETED)
    return sorted(keys, key=encode_key)
