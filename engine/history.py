"""Bounded interaction history and running features for one contact."""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from engine.catalog import Catalog, Index
from engine.context import Ctx
from engine.deps import FeatureSpec
from engine.limits import Limits
from engine.state import ContactState

__all__ = [
    "ArchivedEvent", "Rebuild", "gc_state", "is_duplicate", "rebuild_history",
    "rebuild_needs", "record_event", "remember_seen",
]

#: one retained interaction: (occurred_at µs, event id, type, all properties)
ArchivedEvent = tuple[int, str, str, dict[str, Any]]

_T = itemgetter(0)
_ID = itemgetter(1)


def is_duplicate(st: ContactState, event_type: str, event_id: str) -> bool:
    """Seen recently (any type) or still in the kept history of its type."""
    if event_id in st.seen:
        return True
    return event_id in map(_ID, st.history.get(event_type, ()))  # compared in C


def record_event(
    st: ContactState,
    ctx: Ctx,
    idx: Index,
    limits: Limits,
    event_type: str,
    event_id: str,
    t: int,
    props: dict[str, Any],
) -> None:
    """Fold the event into running features and insert it (projected) into
    the kept history, pruning what no live window can still see."""
    remember_seen(st, limits, event_id)
    for spec in idx.features_by_type.get(event_type, ()):
        value = spec.fold(ctx.feature(spec), t, props)
        ctx.own_features()[spec.key] = value
    need = idx.history.get(event_type)
    if need is None:
        return
    st.history = ctx.history = dict(st.history)  # shared with the input state
    kept = {k: props[k] for k in need.props if k in props}
    events: list[Any] = list(st.history.get(event_type, ()))
    entry: Any = (t, event_id, kept)  # a tuple (lists after a reload): untracked by the GC
    insort(events, entry, key=_T)
    horizon = ctx.now - need.lookback_us
    drop = 0
    while drop < len(events) and events[drop][0] < horizon:
        drop += 1
    drop = max(drop, len(events) - limits.max_events(event_type))
    if drop:
        del events[:drop]
    if events:
        st.history[event_type] = events
    else:
        st.history.pop(event_type, None)


def gc_state(st: ContactState, idx: Index) -> bool:
    """Drop features and history types no live segment needs any more, into
    copies (both dicts may be shared with the input state); a dict with
    nothing to drop stays as it is (an unchanged state is not re-encoded).
    Returns whether ``features`` is a fresh copy."""
    if not st.history.keys() <= idx.history.keys():
        st.history = {t: v for t, v in st.history.items() if t in idx.history}
    if st.features.keys() <= idx.feature_keys:
        return False
    st.features = {k: v for k, v in st.features.items() if k in idx.feature_keys}
    return True


def remember_seen(st: ContactState, limits: Limits, event_id: str) -> None:
    """Add to the recent ids (dedup), whether or not a segment reads the type."""
    st.seen = (*st.seen, event_id)[-limits.max_seen_ids:]  # a tuple: untracked by the GC


@dataclass(frozen=True, slots=True)
class Rebuild:
    """What a segment going live (or changing) reads from the retained
    history of each contact: the kept-history types and the running
    features of its condition."""

    types: frozenset[str]
    features: tuple[FeatureSpec, ...]

    @property
    def event_types(self) -> frozenset[str]:
        """Every event type the rebuild reads."""
        return self.types | {f.event_type for f in self.features}

    def __or__(self, other: Rebuild) -> Rebuild:
        keys = {f.key for f in self.features}
        return Rebuild(self.types | other.types,
                       self.features + tuple(f for f in other.features if f.key not in keys))


def rebuild_needs(catalog: Catalog, segment_id: str) -> Rebuild | None:
    """None when the segment is not live or reads no interaction history."""
    compiled = catalog.index.live.get(segment_id)
    if compiled is None:
        return None
    deps = compiled.deps
    types = frozenset(t for t, _ in deps.history)
    if not types and not deps.features:
        return None
    return Rebuild(types, deps.features)


def rebuild_history(st: ContactState, idx: Index, limits: Limits, need: Rebuild,
                    events: Iterable[ArchivedEvent], now_us: int) -> ContactState:
    """A copy of ``st`` whose kept history (``need.types``) and running
    features (``need.features``) are what they would be had the segment been
    live since the first of ``events`` (the contact's retained interactions,
    time order, duplicates already removed). A feature the contact already
    has is kept: another live segment maintains it, maybe over events older
    than the retention. Idempotent: rebuilding again over the same events
    gives the same state. ``st`` itself when there is nothing to rebuild (no
    kept or retained event of those types, no feature to start): most
    contacts, for a segment over a rare event type."""
    if (not events and st.history.keys().isdisjoint(need.types)
            and all(spec.key in st.features for spec in need.features)):
        return st  # the common case, without building what is below
    lists: dict[str, list[Any]] = {t: [] for t in need.types if t in idx.history}
    missing = [spec for spec in need.features if spec.key not in st.features]
    specs: dict[str, list[FeatureSpec]] = {}
    for spec in missing:
        specs.setdefault(spec.event_type, []).append(spec)
    values: dict[str, Any] = {}
    for t, event_id, etype, props in events:
        kept = lists.get(etype)
        if kept is not None:
            wanted = idx.history[etype].props
            kept.append((t, event_id, {k: props[k] for k in wanted if k in props}))
        for spec in specs.get(etype, ()):
            values[spec.key] = spec.fold(values.get(spec.key, spec.initial), t, props)
    if not values and not any(kept or etype in st.history for etype, kept in lists.items()):
        return st
    new = st.clone()
    if lists:
        new.history = dict(st.history)
        for etype, kept in lists.items():
            horizon = now_us - idx.history[etype].lookback_us
            first = 0
            while first < len(kept) and kept[first][0] < horizon:
                first += 1
            kept = kept[max(first, len(kept) - limits.max_events(etype)):]
            if kept:
                new.history[etype] = kept
            else:
                new.history.pop(etype, None)
    if values:  # as live: a key exists once an event of its type came
        new.features = {**st.features, **values}
    return new
