"""Bounds on per-contact state and the control group (configurable per catalog)."""

from __future__ import annotations

from dataclasses import dataclass

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
