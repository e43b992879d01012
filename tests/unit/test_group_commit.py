"""Group commit: several staged batches settle at once (runtime/loop.py's
acker gathers the batches queued meanwhile), as one merged changelog send
and one store write. Checked against a naive model on real RocksDB and in
memory: reads through the staged store see every staged write, the store
holds exactly the committed batches, and a replica restored from the
merged changelog alone equals the store."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.keys import Keyspace, stored_key
from runtime.memory import MemoryPartitionStore
from runtime.processor import INPUT_OFFSET_KEY, merged_changelog
from runtime.restore import apply_changelog
from runtime.staged import StagedStore
from runtime.types import ChangelogRecord
from tests.unit.runtime_backends import BACKENDS, open_store

MARKER = stored_key(Keyspace.META, INPUT_OFFSET_KEY)
_keys = st.sampled_from([b"a", b"b", b"\x00", b"\xff", b"ab"])
_write = st.tuples(st.sampled_from([Keyspace.CONTACTS, Keyspace.ARCHIVE]), _keys,
                   st.none() | st.binary(min_size=1, max_size=2))
_batch = st.tuples(st.just("batch"), st.lists(_write, max_size=4))
_commit = st.tuples(st.just("commit"), st.integers(1, 4))
ops = st.lists(st.one_of(_batch, _batch, _commit, st.just(("crash",))), max_size=30)


def _view(committed: dict[bytes, bytes], pending: list[list[ChangelogRecord]]) -> dict:
    view = dict(committed)
    for records in pending:
        for key, value in records:
            if value is None:
                view.pop(key, None)
            else:
                view[key] = value
    return view


def _run(kind: str, path: Path, operations: list[tuple]) -> None:
    stores = open_store(kind, path)
    staged = StagedStore(stores.assign(0))
    changelog: list[tuple[int, bytes, bytes | None]] = []
    committed: dict[bytes, bytes] = {}
    pending: list[tuple[int, list[ChangelogRecord]]] = []  # (batch number, records)
    input_offset = 0
    for op in operations:
        if op[0] == "batch":
            txn = staged.begin()
            for keyspace, key, value in op[1]:
                if value is None:
                    txn.delete(keyspace, key)
                else:
                    txn.put(keyspace, key, value)
            input_offset += 1
            txn.put(Keyspace.META, INPUT_OFFSET_KEY, str(input_offset).encode())
            records = list(txn.prepare())
            txn.close()
            pending.append((staged.stage(records), records))
        elif op[0] == "commit" and pending:
            settling, pending = pending[: op[1]], pending[op[1]:]
            merged = merged_changelog(records for _, records in settling)
            # one record per key, the newest value, the input offset record last
            assert dict(merged) == dict(r for _, records in settling for r in records)
            assert len(merged) == len(dict(merged))
            assert merged[-1][0] == MARKER
            base = len(changelog)
            changelog.extend((base + i, key, value) for i, (key, value) in enumerate(merged))
            staged.commit(settling[-1][0], len(changelog) - 1)
            committed = _view(committed, [records for _, records in settling])
        elif op[0] == "crash":  # what is staged is lost; the store is reopened
            stores.revoke(0)
            staged = StagedStore(stores.assign(0))
            pending = []
        view = _view(committed, [records for _, records in pending])
        everything = {key for _, key, _ in changelog} | {k for _, r in pending for k, _ in r}
        for key in everything:
            assert staged.get(key) == view.get(key)
        assert dict(staged.iter_range(bytes((Keyspace.META,)), None)) == view
        assert dict(staged.base.iter_range(bytes((Keyspace.META,)), None)) == committed
    replica = MemoryPartitionStore()
    apply_changelog(replica, changelog, chunk_size=3)
    assert dict(replica.iter_range(bytes((Keyspace.META,)), None)) == committed
    assert staged.checkpoint() == (changelog[-1][0] if changelog else None)
    stores.close()


@pytest.mark.parametrize("kind", BACKENDS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=ops)
def test_batches_committed_together_match_the_model(kind: str, operations: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        _run(kind, Path(directory), operations)


def test_committing_a_batch_that_is_not_staged_is_refused(tmp_path: Path) -> None:
    stores = open_store("rocksdb", tmp_path)
    staged = StagedStore(stores.assign(0))
    txn = staged.begin()
    txn.put(Keyspace.CONTACTS, b"a", b"1")
    first = staged.stage(list(txn.prepare()))
    txn.close()
    staged.commit(first, 0)
    with pytest.raises(ValueError, match="not staged"):
        staged.commit(first, 0)
    stores.close()
