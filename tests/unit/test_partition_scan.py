"""Prefix scans over a partition's RocksDB keys (the account index reads
an account's contacts with one), merged with the current batch's writes."""

from __future__ import annotations

import orjson
from rocksdict import Rdict

from agents.buffered_tables import BufferedTable, WriteBatch
from agents.partition_scan import scan_prefix


class _Store:
    """Faust's RocksDB store as the scan sees it: one Rdict per partition,
    keys JSON-encoded."""

    offset_key = b"__faust\x00offset__"

    def __init__(self, path) -> None:
        self.dbs = {0: Rdict(str(path / "p0")), 1: Rdict(str(path / "p1"))}

    def _db_for_partition(self, partition: int) -> Rdict:
        return self.dbs[partition]


class _Table:
    def __init__(self, store: _Store) -> None:
        self.data = store

    def get(self, key, default=None):
        return default


def test_prefix_scan_reads_only_the_prefix_of_its_partition(tmp_path) -> None:
    store = _Store(tmp_path)
    for partition, key in [(0, "0:a1/c1"), (0, "0:a1/c2"), (0, "0:a10/c3"), (0, "0:a0/c4"),
                           (0, "0:a2/c5"), (1, "1:a1/c6")]:
        store.dbs[partition][orjson.dumps(key)] = b"1"
    store.dbs[0][store.offset_key] = b"7"
    table = _Table(store)
    assert scan_prefix(table, 0, "0:a1/") == ["0:a1/c1", "0:a1/c2"]  # not a10
    assert scan_prefix(table, 1, "1:a1/") == ["1:a1/c6"]
    assert scan_prefix(table, 0, "0:a9/") == []
    for db in store.dbs.values():
        db.close()


def test_prefix_scan_sees_the_batch_writes_not_yet_applied(tmp_path) -> None:
    store = _Store(tmp_path)
    store.dbs[0][orjson.dumps("0:a1/c1")] = b"1"
    store.dbs[0][orjson.dumps("0:a1/c2")] = b"1"
    batch = WriteBatch()
    batch.event = object()  # type: ignore[assignment]
    buffered = BufferedTable(_Table(store), batch)  # type: ignore[arg-type]
    buffered["0:a1/c3"] = b"1"
    buffered.pop("0:a1/c1")
    buffered["0:a2/c1"] = b"1"
    assert scan_prefix(buffered, 0, "0:a1/") == ["0:a1/c2", "0:a1/c3"]
    assert scan_prefix(buffered, 0, "0:a2/") == ["0:a2/c1"]
    for db in store.dbs.values():
        db.close()
