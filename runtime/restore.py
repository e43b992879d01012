"""Restore a partition store from its changelog, tail only (broker-free).

The store's checkpoint is the changelog offset its data is complete up to;
records at or below it are skipped, so a worker restarted with its RocksDB
intact replays only the tail (Kafka Streams' ``.checkpoint`` files, here in
the DB itself). Records are applied in chunks, each one write batch that
also advances the checkpoint: a crash mid-restore resumes after the last
chunk, and restoring twice is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from runtime.keys import Keyspace
from runtime.types import OffsetRecord, StorePartition

__all__ = ["RestoreResult", "apply_changelog"]


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """What one restore did."""

    applied: int  # records written (before coalescing per key)
    skipped: int  # records at or below the checkpoint
    checkpoint: int | None  # the checkpoint afterwards


def apply_changelog(
    store: StorePartition, records: Iterable[OffsetRecord], *, chunk_size: int = 1000
) -> RestoreResult:
    """Apply the records after the store's checkpoint, in offset order.

    ``records``: ``(offset, stored key, value or None)`` in the changelog
    partition's order (offsets increase; compaction may leave gaps).
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    checkpoint = store.checkpoint()
    applied = skipped = 0
    pending: dict[bytes, bytes | None] = {}
    last = checkpoint
    for offset, key, value in records:
        if last is not None and offset <= last:
            skipped += 1
            continue
        if not key or key[0] == Keyspace.LOCAL:
            raise ValueError(f"changelog record at offset {offset} has a local key: {key!r}")
        pending[key] = value  # later offsets win: the changelog's order
        last = offset
        applied += 1
        if len(pending) >= chunk_size:
            store.write(pending, last)
            pending = {}
    if pending:
        store.write(pending, last)
    return RestoreResult(applied=applied, skipped=skipped, checkpoint=last)
