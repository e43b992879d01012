"""runtime store + transaction, on REAL RocksDB (tmp_path) and in memory.

The memory backend must behave exactly like RocksDB (byte order), so the
same tests run on both; crash tests run on RocksDB only, in a subprocess
killed before it closes the DB.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rocksdict import Rdict

from runtime.keys import CHECKPOINT_KEY, Keyspace, archive_key, archive_prefix, decode_archive_key
from runtime.keys import decode_offset as decode_checkpoint
from runtime.memory import MemoryPartitionStore
from runtime.restore import apply_changelog
from runtime.types import StoreClosedError, StorePartition, TransactionClosedError
from tests.unit.runtime_backends import BACKENDS, AnyStore, open_store

ROOT = Path(__file__).resolve().parents[2]
DATA = (Keyspace.META, Keyspace.CONTACTS, Keyspace.ARCHIVE)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AnyStore]:
    opened = open_store(request.param, tmp_path)
    yield opened
    opened.close()


def contents(partition: StorePartition) -> dict[bytes, bytes]:
    """Every stored data item (the LOCAL keyspace left out)."""
    return dict(partition.iter_range(bytes((Keyspace.META,)), None))


# -- a transaction equals a naive dict model -----------------------------------

# Bytes around the edges of the order (0x00, 0xff, the sign bit), keys of
# different lengths, few keyspaces: overlay and stored keys interleave often.
_byte = st.sampled_from([0x00, 0x80, 0xFF])
keys = st.lists(_byte, max_size=3).map(bytes)  # 40 keys: rewrites of stored keys are common
keyspaces = st.sampled_from(DATA[1:]) | st.just(DATA[0])
values = st.binary(max_size=2)
_op_kinds = {
    "put": st.tuples(st.just("put"), keyspaces, keys, values),
    "delete": st.tuples(st.just("delete"), keyspaces, keys),
    "get": st.tuples(st.just("get"), keyspaces, keys),
    "scan_prefix": st.tuples(st.just("scan_prefix"), keyspaces, keys, st.none() | keys),
    "scan_range": st.tuples(st.just("scan_range"), keyspaces, st.none() | keys, st.none() | keys),
    "flush": st.tuples(st.just("flush")),
    "crash": st.tuples(st.just("crash")),
}
_weights = ["put"] * 5 + ["delete", "get", "scan_prefix", "scan_range", "scan_range"] * 2
ops = st.sampled_from([*_weights, "flush", "flush", "crash"]).flatmap(_op_kinds.__getitem__)


def _expected_scan(
    model: dict[bytes, bytes], keyspace: Keyspace, lower: bytes, upper: bytes | None
) -> list[tuple[bytes, bytes]]:
    """The model's view: sorted as bytes, keyspace byte stripped."""
    found = []
    for full in sorted(model):
        if full[0] != keyspace:
            continue
        key = full[1:]
        if key >= lower and (upper is None or key < upper):
            found.append((key, model[full]))
    return found


def _run_ops(kind: str, path: Path, operations: list[tuple]) -> None:
    stores = open_store(kind, path)
    part = stores.assign(0)
    replica = MemoryPartitionStore()  # restored from the changelog alone
    changelog: list[tuple[int, bytes, bytes | None]] = []
    committed: dict[bytes, bytes] = {}
    model = dict(committed)
    changed: set[bytes] = set()
    tx = part.begin()
    for op in operations:
        name = op[0]
        if name == "put":
            _, ks, key, value = op
            tx.put(ks, key, value)
            model[bytes((ks,)) + key] = value
            changed.add(bytes((ks,)) + key)
        elif name == "delete":
            _, ks, key = op
            tx.delete(ks, key)
            model.pop(bytes((ks,)) + key, None)
            changed.add(bytes((ks,)) + key)
        elif name == "get":
            _, ks, key = op
            assert tx.get(ks, key) == model.get(bytes((ks,)) + key)
        elif name == "scan_prefix":
            _, ks, prefix, after = op
            got = [kv for kv in tx.scan_prefix(ks, prefix, after=after)]
            want = [
                kv
                for kv in _expected_scan(model, ks, prefix, None)
                if kv[0].startswith(prefix) and (after is None or kv[0] > after)
            ]
            assert got == want
        elif name == "scan_range":
            _, ks, after, before = op
            got = list(tx.scan_range(ks, after=after, before=before))
            want = [
                kv
                for kv in _expected_scan(model, ks, b"", before)
                if after is None or kv[0] > after
            ]
            assert got == want
        elif name == "flush":
            records = tx.prepare()
            assert records == [(k, model.get(k)) for k in sorted(changed)]
            base = len(changelog)
            offset = base + len(records) - 1 if records else None
            changelog.extend((base + i, k, v) for i, (k, v) in enumerate(records))
            tx.flush(offset)
            committed = dict(model)
            changed = set()
            assert contents(part) == committed
            tx = part.begin()
        else:  # crash: the transaction is lost, the partition reopened
            tx.close()
            stores.revoke(0)
            part = stores.assign(0)
            model = dict(committed)
            changed = set()
            assert contents(part) == committed
            tx = part.begin()
    tx.close()
    apply_changelog(replica, changelog, chunk_size=3)
    assert contents(replica) == contents(part) == committed
    assert part.checkpoint() == (changelog[-1][0] if changelog else None)
    stores.close()


@pytest.mark.parametrize("kind", BACKENDS)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=st.lists(ops, min_size=5, max_size=60))
def test_transaction_matches_dict_model(kind: str, operations: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        _run_ops(kind, Path(directory), operations)


def test_overlay_merges_in_byte_order_not_length_or_str_order(store: AnyStore) -> None:
    """Issue #12 item 6's bug class: stored and unflushed keys interleave by bytes."""
    part = store.assign(0)
    with part.begin() as tx:
        for key in (b'"a\\"b"', b"\x00\x00", b"b"):
            tx.put(Keyspace.CONTACTS, key, b"stored")
        tx.flush(0)
    with part.begin() as tx:
        for key in (b'"aA"', b"\x01", b"a\xff", b"\x00"):
            tx.put(Keyspace.CONTACTS, key, b"new")
        want = sorted([b'"a\\"b"', b"\x00\x00", b"b", b'"aA"', b"\x01", b"a\xff", b"\x00"])
        assert [k for k, _ in tx.scan_range(Keyspace.CONTACTS)] == want
        # resuming after each key in turn visits every key exactly once
        seen, cursor = [], None
        while True:
            page = list(itertools.islice(tx.scan_range(Keyspace.CONTACTS, after=cursor), 2))
            if not page:
                break
            seen += [k for k, _ in page]
            cursor = page[-1][0]
        assert seen == want


# -- archive scans by contact --------------------------------------------------


def test_archive_prefix_scan_is_time_ordered_with_unflushed_writes(store: AnyStore) -> None:
    part = store.assign(0)
    with part.begin() as tx:
        for contact, t, seq in [("c1", 50, "e0"), ("c1", -20, "e0"), ("c10", 10, "e0"),
                                ("c", 5, "e0")]:
            tx.put(Keyspace.ARCHIVE, archive_key(contact, t, seq), f"{contact}@{t}".encode())
        tx.flush(0)
    with part.begin() as tx:
        tx.put(Keyspace.ARCHIVE, archive_key("c1", 30, "e1"), b"new")  # unflushed, between
        tx.put(Keyspace.ARCHIVE, archive_key("c1", 30, "e0"), b"new0")
        tx.put(Keyspace.ARCHIVE, archive_key("c1", 2**40, "e0"), b"last")
        tx.delete(Keyspace.ARCHIVE, archive_key("c1", 50, "e0"))
        tx.put(Keyspace.CONTACTS, b"c1", b"state")  # another keyspace, same id
        scanned = [
            decode_archive_key(k) for k, _ in tx.scan_prefix(Keyspace.ARCHIVE, archive_prefix("c1"))
        ]
        assert scanned == [
            ("c1", -20, "e0"), ("c1", 30, "e0"), ("c1", 30, "e1"), ("c1", 2**40, "e0")]
        # resume after a cursor (the last key seen), same order
        cursor = archive_key("c1", 30, "e0")
        rest = [
            decode_archive_key(k)
            for k, _ in tx.scan_prefix(Keyspace.ARCHIVE, archive_prefix("c1"), after=cursor)
        ]
        assert rest == [("c1", 30, "e1"), ("c1", 2**40, "e0")]


# -- crash semantics (RocksDB) ---------------------------------------------------

_CHILD = """
import os, sys
from runtime.keys import Keyspace
from runtime.store import Store
part = Store(sys.argv[1]).assign(0)
tx = part.begin()
tx.put(Keyspace.CONTACTS, b"a", b"second")
tx.put(Keyspace.CONTACTS, b"b", b"new")
tx.delete(Keyspace.CONTACTS, b"old")
if sys.argv[2] == "flush":
    tx.flush(41)
os._exit(0)  # like kill -9: no close, no memtable flush
"""


def _seed(path: Path) -> None:
    store = open_store("rocksdb", path)
    with store.assign(0).begin() as tx:
        tx.put(Keyspace.CONTACTS, b"a", b"first")
        tx.put(Keyspace.CONTACTS, b"old", b"x")
        tx.flush(40)
    store.close()


def _crash_child(path: Path, mode: str) -> None:
    subprocess.run([sys.executable, "-c", _CHILD, str(path), mode], cwd=ROOT, check=True)


def _raw(path: Path) -> dict[bytes, bytes]:
    db = Rdict(str(path / "p0"))  # opened as RocksDB stored it, raw mode
    try:
        return dict(db.items())
    finally:
        db.close()


def test_unflushed_transaction_leaves_the_store_unchanged_after_a_crash(tmp_path: Path) -> None:
    _seed(tmp_path)
    _crash_child(tmp_path, "no-flush")
    raw = _raw(tmp_path)
    assert raw[b"\x02a"] == b"first" and b"\x02b" not in raw and b"\x02old" in raw
    assert decode_checkpoint(raw[CHECKPOINT_KEY]) == 40


def test_flush_is_atomic_with_the_checkpoint_after_a_crash(tmp_path: Path) -> None:
    _seed(tmp_path)
    _crash_child(tmp_path, "flush")
    raw = _raw(tmp_path)
    assert raw[b"\x02a"] == b"second" and raw[b"\x02b"] == b"new" and b"\x02old" not in raw
    assert decode_checkpoint(raw[CHECKPOINT_KEY]) == 41
    store = open_store("rocksdb", tmp_path)
    assert store.assign(0).checkpoint() == 41
    store.close()


def test_a_refused_flush_writes_nothing(store: AnyStore) -> None:
    part = store.assign(0)
    with part.begin() as tx:
        tx.put(Keyspace.CONTACTS, b"a", b"1")
        tx.flush(10)
    tx = part.begin()
    tx.put(Keyspace.CONTACTS, b"a", b"2")
    with pytest.raises(ValueError, match="go back"):
        tx.flush(9)
    assert part.get(b"\x02a") == b"1" and part.checkpoint() == 10


# -- lifecycle -------------------------------------------------------------------


def test_transaction_lifecycle(store: AnyStore) -> None:
    part = store.assign(0)
    tx = part.begin()
    tx.put(Keyspace.CONTACTS, b"a", b"1")
    tx.put(Keyspace.CONTACTS, b"a", b"2")  # coalesced
    tx.delete(Keyspace.DUE, b"gone")
    assert tx.prepare() == [(b"\x02a", b"2"), (b"\x04gone", None)]
    with pytest.raises(TransactionClosedError):
        tx.put(Keyspace.CONTACTS, b"b", b"1")
    assert tx.get(Keyspace.CONTACTS, b"a") == b"2"  # reads still allowed
    tx.flush(None)  # no changelog (yet): data written, no checkpoint
    assert part.checkpoint() is None and part.get(b"\x02a") == b"2"
    with pytest.raises(TransactionClosedError):
        tx.get(Keyspace.CONTACTS, b"a")
    with pytest.raises(ValueError, match="LOCAL"):
        part.begin().put(Keyspace.LOCAL, b"changelog-offset", b"x")


def test_partitions_are_independent_and_survive_revoke(store: AnyStore) -> None:
    p0, p1 = store.assign(0), store.assign(1)
    with p0.begin() as tx:
        tx.put(Keyspace.CONTACTS, b"a", b"zero")
        tx.flush(5)
    with p1.begin() as tx:
        tx.put(Keyspace.CONTACTS, b"a", b"one")
        tx.put(Keyspace.CONTACTS, b"b", b"one")
        tx.flush(7)
    assert contents(p0) == {b"\x02a": b"zero"} and p0.checkpoint() == 5
    assert contents(p1) == {b"\x02a": b"one", b"\x02b": b"one"} and p1.checkpoint() == 7
    with pytest.raises(ValueError, match="already assigned"):
        store.assign(0)
    store.revoke(0)
    assert p0.closed and set(store.partitions) == {1}
    with pytest.raises(StoreClosedError):
        p0.get(b"\x02a")
    with pytest.raises(StoreClosedError):
        p0.begin()
    again = store.assign(0)
    assert contents(again) == {b"\x02a": b"zero"} and again.checkpoint() == 5
    store.close()
    assert again.closed and p1.closed


def test_revoke_fails_an_open_transaction_instead_of_writing(store: AnyStore) -> None:
    part = store.assign(0)
    tx = part.begin()
    tx.put(Keyspace.CONTACTS, b"a", b"1")
    store.revoke(0)
    with pytest.raises(StoreClosedError):
        tx.flush(1)
    assert contents(store.assign(0)) == {}


def test_restore_after_a_lost_local_copy_rebuilds_from_changelog(store: AnyStore) -> None:
    part = store.assign(0)
    with part.begin() as tx:
        tx.put(Keyspace.CONTACTS, b"a", b"1")
        tx.put(Keyspace.ARCHIVE, archive_key("a", 1), b"e")
        records = tx.prepare()
        tx.flush(len(records) - 1)
    fresh = MemoryPartitionStore()
    apply_changelog(fresh, [(i, k, v) for i, (k, v) in enumerate(records)])
    assert contents(fresh) == contents(part) and fresh.checkpoint() == part.checkpoint()


def test_every_partition_counts_in_one_memtable_budget(tmp_path: Path) -> None:
    """The memtables of all partitions share one WriteBufferManager (a
    bound that does not grow with the partitions a worker holds)."""
    from runtime.store import MEMTABLE_BUDGET, Store

    store = Store(tmp_path, cache_bytes=2**20, write_buffer_bytes=2**20)
    try:
        assert store.write_buffers.get_buffer_size() == MEMTABLE_BUDGET * 2**20
        parts = [store.assign(p) for p in range(4)]
        written = 0
        for p, part in enumerate(parts):  # 4 x 100 KB: below the budget, no flush
            value = bytes([p]) * 1000
            part.write({bytes([Keyspace.CONTACTS]) + b"%04d" % n: value for n in range(100)}, None)
            written += 100 * len(value)
            assert store.write_buffers.get_usage() >= written  # this partition counted too
    finally:
        store.close()


def test_local_checkpoints_lists_closed_copies_on_disk(tmp_path: Path) -> None:
    """What a worker tells its group's leader when joining (runtime/assignor.py)."""
    from runtime.store import Store

    store = Store(tmp_path)
    store.assign(3).write({b"\x01a": b"1"}, 41)
    store.assign(5).write({b"\x01b": b"2"}, None)  # no checkpoint: not a usable copy
    store.assign(7).write({b"\x01c": b"3"}, 9)
    store.revoke(3)
    store.revoke(5)
    assert store.local_checkpoints() == {3: 41}  # 7 is open: its owner reports it
    store.close()
    (tmp_path / "not-a-partition").mkdir()
    reopened = Store(tmp_path)
    assert reopened.local_checkpoints() == {3: 41, 7: 9}
    assert reopened.partitions == {}  # each copy was opened briefly, then closed
    reopened.close()
