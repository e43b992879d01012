"""Bounded interaction history and running features for one contact."""

from __future__ import annotations

from bisect import insort
from operator import itemgetter
from typing import Any

from engine.catalog import Index
from engine.context import Ctx
from engine.limits import Limits
from engine.state import ContactState

__all__ = ["gc_state", "is_duplicate", "record_event"]

_T = itemgetter(0)


def is_duplicate(st: ContactState, event_type: str, event_id: str) -> bool:
    """Seen recently (any type) or still in the kept history of its type."""
    if event_id in st.seen:
        return True
    return any(e[1] == event_id for e in st.history.get(event_type, ()))


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
    st.seen = (*st.seen, event_id)[-limits.max_seen_ids:]  # a tuple: untracked by the GC
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
    drop = max(drop, len(events) - limits.max_events_per_type)
    if drop:
        del events[:drop]
    if events:
        st.history[event_type] = events
    else:
        st.history.pop(event_type, None)


def gc_state(st: ContactState, idx: Index) -> None:
    """Drop features and history types no live segment needs any more
    (copies: both dicts may be shared with the input state)."""
    st.features = {k: v for k, v in st.features.items() if k in idx.feature_keys}
    st.history = {t: v for t, v in st.history.items() if t in idx.history}
