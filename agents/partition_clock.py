"""The engine clock ``now`` handed to every ``apply`` call.

``wall``: the wall clock (production). ``event``: per partition, the latest
event time seen so far (interaction ``occurred_at``, contact ``updated_at``) —
replays, backfills and demos then evaluate windows exactly as they would have
been evaluated live, whatever the replay speed. The event clock of a
partition is part of its state: it is kept in ``store`` (a changelogged
table) so a restart resumes at the same instant instead of jumping to the
wall clock.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Literal

__all__ = ["PartitionClock"]


class PartitionClock:
    def __init__(
        self,
        mode: Literal["wall", "event"],
        store: MutableMapping[str, bytes] | None = None,
    ) -> None:
        self.mode = mode
        self._store: MutableMapping[str, bytes] = store if store is not None else {}
        self._latest: dict[int, datetime | None] = {}

    def forget(self) -> None:
        """Drop the cache (after a rebalance the store is the truth)."""
        self._latest.clear()

    def _load(self, partition: int) -> datetime | None:
        if partition not in self._latest:
            raw = self._store.get(str(partition))
            self._latest[partition] = (
                datetime.fromisoformat(raw.decode()) if raw is not None else None
            )
        return self._latest[partition]

    def now(self, partition: int, event_time: datetime | None = None) -> datetime:
        if self.mode == "wall":
            return datetime.now(UTC)
        latest = self._load(partition)
        if event_time is not None and (latest is None or event_time > latest):
            latest = self._latest[partition] = event_time
            self._store[str(partition)] = event_time.isoformat().encode()
        # Before any event time is known, fall back to the wall clock.
        return latest if latest is not None else datetime.now(UTC)
