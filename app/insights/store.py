"""The insights series on disk: one RocksDB (rocksdict, through the
runtime's ``PartitionStore``) under ``<data_dir>/insights/<topic>``, holding the
fold's keys (``app.insights.series``) and, in the same write batch, the
next offset to read of every membership-changes partition (``o<partition>``)
and the newest hour counted (``n``). A batch of changes and the offsets
after it are written together, so a worker that stops (or is killed) at any
point resumes exactly where its store stands: nothing counted twice,
nothing skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from rocksdict import Cache

from app.insights.series import (
    HourCounts,
    SeriesFold,
    hour_from_key,
    hour_key,
    hour_prefix,
    parse_change,
    total_key,
)
from runtime.store import PartitionStore, rocksdb_options

__all__ = ["InsightsStore"]

log = logging.getLogger(__name__)

_OFFSET = b"o"
_NEWEST = b"n"
_TRUNCATED = b"x"  # present: the fold began after the topic had dropped changes
_MIB = 2**20


def _offset_key(partition: int) -> bytes:
    return _OFFSET + b"%06d" % partition


class InsightsStore:
    def __init__(self, path: Path | str, retention_days: int = 90) -> None:
        self._db = PartitionStore(path, rocksdb_options(Cache(4 * _MIB), _MIB))
        self.retention_hours = retention_days * 24
        self._pruned_day: int | None = None

    def close(self) -> None:
        self._db.close()

    # -- what the fold has read ----------------------------------------------------

    def offsets(self) -> dict[int, int]:
        """partition -> next offset to read (partitions never read: absent)."""
        return {int(key[1:]): int(value)
                for key, value in self._db.iter_range(_OFFSET, b"p")}

    def history_complete(self) -> bool:
        """False when the fold began on a partition whose earliest changes
        the topic's retention had already deleted: its sizes then count
        only the changes it saw (joins and leaves per hour stay exact)."""
        return self._db.get(_TRUNCATED) is None

    def mark_history_incomplete(self) -> None:
        self._db.write({_TRUNCATED: b"1"}, None)

    def newest_hour(self) -> int | None:
        raw = self._db.get(_NEWEST)
        return int(raw) if raw is not None else None

    # -- folding -------------------------------------------------------------------

    def fold(self, records: Iterable[tuple[int, int, bytes | None]]) -> tuple[int, int, int]:
        """Fold ``(partition, offset, value)`` records (each partition's in
        offset order) and write the result with the offsets after them, in
        one write batch. Returns (applied, dropped as replays, unreadable)."""
        fold = SeriesFold(self._db.get)
        offsets: dict[int, int] = {}
        unreadable = 0
        for partition, offset, value in records:
            offsets[partition] = offset + 1
            change = parse_change(value) if value is not None else None
            if change is None:
                unreadable += 1
                continue
            fold.apply(change)
        updates = fold.updates()
        for partition, offset in offsets.items():
            updates[_offset_key(partition)] = b"%d" % offset
        newest = self.newest_hour()
        if fold.newest_hour is not None and (newest is None or fold.newest_hour > newest):
            newest = fold.newest_hour
            updates[_NEWEST] = b"%d" % newest
        if updates:
            self._db.write(updates, None)
        if newest is not None:
            self._prune(newest)
        return fold.applied, fold.dropped, unreadable

    def _prune(self, newest: int) -> None:
        """Drop hours older than the retention, counted from the newest hour
        (not the wall clock: a replay of old history keeps its last 90 days).
        Once a day of the series' clock; sizes are unaffected (they are
        counted back from each segment's total)."""
        day = newest // 24
        if day == self._pruned_day:
            return
        self._pruned_day = day
        cutoff = newest - self.retention_hours
        # Per segment (one total each), only its hours before the cutoff: a
        # day's worth at most, not a scan of every hour kept.
        segments = [key[1:].decode() for key, _ in self._db.iter_range(b"t", b"u")]
        stale: dict[bytes, bytes | None] = {}
        for segment_id in segments:
            lower, _ = hour_prefix(segment_id)
            for key, _ in self._db.iter_range(lower, hour_key(segment_id, cutoff)):
                stale[key] = None
        if stale:
            self._db.write(stale, None)
            log.info("insights: pruned %d hours older than %d days", len(stale),
                     self.retention_hours // 24)

    # -- reads for the API -------------------------------------------------------------

    def hours(self, segment_id: str, first: int) -> dict[int, HourCounts]:
        """Every stored hour of the segment from ``first`` on (to the newest)."""
        lower, upper = hour_prefix(segment_id)
        start = max(lower, hour_key(segment_id, first))
        return {hour_from_key(key): HourCounts.decode(value)
                for key, value in self._db.iter_range(start, upper)}

    def total(self, segment_id: str) -> int | None:
        """The segment's size by the fold; None when no change of it was seen."""
        raw = self._db.get(total_key(segment_id))
        return int(raw) if raw is not None else None
