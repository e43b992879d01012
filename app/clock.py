"""The engine clock ``now`` handed to every ``apply`` call.

``wall``: the wall clock (production). ``event``: per partition, the latest
event time seen so far (interaction ``occurred_at``, contact ``updated_at``) —
replays, backfills and demos then evaluate windows exactly as they would have
been evaluated live, whatever the replay speed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

__all__ = ["PartitionClock"]


class PartitionClock:
    def __init__(self, mode: Literal["wall", "event"]) -> None:
        self.mode = mode
        self._latest: dict[int, datetime] = {}

    def now(self, partition: int, event_time: datetime | None = None) -> datetime:
        if self.mode == "wall":
            return datetime.now(UTC)
        latest = self._latest.get(partition)
        if event_time is not None and (latest is None or event_time > latest):
            latest = self._latest[partition] = event_time
        # Before any event time is known, fall back to the wall clock.
        return latest if latest is not None else datetime.now(UTC)
