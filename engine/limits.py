"""Bounds on per-contact state and the control group (configurable per catalog)."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.buckets import ControlGroup

__all__ = ["Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    #: newest events kept per interaction type (only types live segments use)
    max_events_per_type: int = 256
    #: recent event ids remembered for dedup across all types
    max_seen_ids: int = 128
    #: distinct values tracked by a running count-distinct / most-frequent
    max_distinct_values: int = 1000
    #: how far back interactions are retained (µs; None: no bound): a
    #: relative window reaching further back could never be filled, so it
    #: is refused when the segment is compiled
    history_retention_us: int | None = None
    #: contacts kept out of every segment (``SEGMENTFLOW_CONTROL_GROUP``;
    #: engine/buckets.py), None: no control group
    control_group: ControlGroup | None = None
    #: per event type, a kept-history bound other than ``max_events_per_type``
    #: (``SEGMENTFLOW_MAX_EVENTS_BY_TYPE``: page views by the thousand,
    #: purchases fewer); pairs, so the limits stay hashable
    events_by_type: tuple[tuple[str, int], ...] = ()
    _by_type: dict[str, int] = field(default_factory=dict, init=False, repr=False,
                                     compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_type", dict(self.events_by_type))

    def max_events(self, event_type: str) -> int:
        """Newest events of this type kept per contact."""
        return self._by_type.get(event_type, self.max_events_per_type)
