"""runtime.restore: only the changelog tail after the checkpoint is applied."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.keys import Keyspace
from runtime.restore import RestoreResult, apply_changelog
from runtime.types import OffsetRecord, StorePartition
from tests.unit.runtime_backends import BACKENDS, AnyStore, open_store


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AnyStore]:
    opened = open_store(request.param, tmp_path)
    yield opened
    opened.close()


def contact(name: str) -> bytes:
    return bytes((Keyspace.CONTACTS,)) + name.encode()


def contents(part: StorePartition) -> dict[bytes, bytes]:
    return dict(part.iter_range(bytes((Keyspace.META,)), None))


# offsets with gaps (compaction, transaction markers); "a" rewritten, "b" deleted
CHANGELOG: list[OffsetRecord] = [
    (0, contact("a"), b"a0"),
    (1, contact("b"), b"b0"),
    (3, contact("a"), b"a3"),
    (4, contact("c"), b"c4"),
    (7, contact("b"), None),
    (8, contact("d"), b"d8"),
]


def test_restore_from_empty_applies_everything(store: AnyStore) -> None:
    part = store.assign(0)
    result = apply_changelog(part, CHANGELOG, chunk_size=2)
    assert result == RestoreResult(applied=6, skipped=0, checkpoint=8)
    assert contents(part) == {contact("a"): b"a3", contact("c"): b"c4", contact("d"): b"d8"}


def test_records_up_to_the_checkpoint_are_ignored(store: AnyStore) -> None:
    part = store.assign(0)
    with part.begin() as tx:  # the local copy as flushed at offset 3 (a=a3, b=b0)
        tx.put(Keyspace.CONTACTS, b"a", b"local")  # differs: proves 0..3 are not re-applied
        tx.put(Keyspace.CONTACTS, b"b", b"b0")
        tx.flush(3)
    result = apply_changelog(part, CHANGELOG)
    assert result == RestoreResult(applied=3, skipped=3, checkpoint=8)
    assert contents(part) == {contact("a"): b"local", contact("c"): b"c4", contact("d"): b"d8"}


def test_reopen_and_restore_again_is_idempotent(store: AnyStore) -> None:
    apply_changelog(store.assign(0), CHANGELOG[:4], chunk_size=3)
    store.revoke(0)
    part = store.assign(0)
    assert part.checkpoint() == 4
    assert apply_changelog(part, CHANGELOG).applied == 2  # the tail only
    before = contents(part)
    store.revoke(0)
    part = store.assign(0)
    assert apply_changelog(part, CHANGELOG) == RestoreResult(applied=0, skipped=6, checkpoint=8)
    assert contents(part) == before


def test_a_restore_interrupted_mid_stream_resumes_after_the_last_chunk(store: AnyStore) -> None:
    part = store.assign(0)

    def failing() -> Iterator[OffsetRecord]:
        yield from CHANGELOG[:5]
        raise ConnectionError("broker went away")

    with pytest.raises(ConnectionError):
        apply_changelog(part, failing(), chunk_size=2)
    # chunks (0, 1) and (3, 4) written, each with its checkpoint; 7 was pending
    assert part.checkpoint() == 4
    assert contents(part)[contact("b")] == b"b0"
    result = apply_changelog(part, CHANGELOG, chunk_size=2)
    assert result.checkpoint == 8
    assert contents(part) == {contact("a"): b"a3", contact("c"): b"c4", contact("d"): b"d8"}


def test_a_changelog_record_cannot_overwrite_the_checkpoint(store: AnyStore) -> None:
    with pytest.raises(ValueError, match="local key"):
        apply_changelog(store.assign(0), [(0, b"\x00changelog-offset", b"x")])
