"""What a compiled condition depends on, and the running features it needs.

The catalog unions these per live segment to build its index (which inputs
re-evaluate which segments) and the history policy (which event types and
properties a contact must keep, and for how long).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Deps", "EventFilter", "FeatureSpec", "HistoryNeed", "merge_deps"]

# (occurred_at_us, props) -> could this event change the condition's value?
EventFilter = Callable[[int, dict[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class HistoryNeed:
    """Events of one type a relative window must see: those not older than
    ``lookback_us`` before now, with these properties (top-level names)."""

    lookback_us: int
    props: frozenset[str]


@dataclass(frozen=True, slots=True, eq=False)
class FeatureSpec:
    """A running aggregate over every event of one type (ever, or inside an
    absolute range): exact however short the kept history is.

    ``fold(value, t_us, props)`` returns the new value (never mutates it)."""

    key: str
    event_type: str
    kind: str
    initial: Any
    fold: Callable[[Any, int, dict[str, Any]], Any]
    props: frozenset[str]


@dataclass(frozen=True, slots=True)
class Deps:
    fields: frozenset[str] = frozenset()
    account: bool = False
    account_fields: frozenset[str] = frozenset()
    consent: bool = False
    #: reads the contact id (``bucket(…)``): constant per contact, but a new
    #: contact must be evaluated for it whatever it carries
    contact_id: bool = False
    event_types: frozenset[str] = frozenset()
    segments: frozenset[str] = frozenset()
    time: bool = False
    features: tuple[FeatureSpec, ...] = ()
    history: tuple[tuple[str, HistoryNeed], ...] = field(default=())
    #: per event type read: a filter saying which events can matter (None: all)
    event_filters: tuple[tuple[str, EventFilter | None], ...] = ()


EMPTY = Deps()


def merge_deps(parts: Iterable[Deps]) -> Deps:
    parts = list(parts)
    if len(parts) == 1:
        return parts[0]
    feats: dict[str, FeatureSpec] = {}
    hist: list[tuple[str, HistoryNeed]] = []
    filters: list[tuple[str, EventFilter | None]] = []
    for p in parts:
        for f in p.features:
            feats.setdefault(f.key, f)
        hist.extend(p.history)
        filters.extend(p.event_filters)
    return Deps(
        fields=frozenset().union(*(p.fields for p in parts)),
        account=any(p.account for p in parts),
        account_fields=frozenset().union(*(p.account_fields for p in parts)),
        consent=any(p.consent for p in parts),
        contact_id=any(p.contact_id for p in parts),
        event_types=frozenset().union(*(p.event_types for p in parts)),
        segments=frozenset().union(*(p.segments for p in parts)),
        time=any(p.time for p in parts),
        features=tuple(feats.values()),
        history=tuple(hist),
        event_filters=tuple(filters),
    )
