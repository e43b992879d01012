"""Would a definition change leave this contact as it is?

A segment going live is applied to every stored contact (the go-live scan),
and most contacts neither join it nor get a due instant from it. ``apply``
answers that too, but clones the state and routes the input first; this
check reads the stored state as it is and says True only when
``apply(state, SegmentChanged(segment_id), ...)`` would return the same
state and no change. Anything it cannot rule out (an overdue timer, the
control group, containers ``apply`` would prune, a running feature the
segment starts) answers False: apply it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.apply import make_ctx
from engine.catalog import Catalog
from engine.state import ContactState

__all__ = ["definition_probe", "unchanged_by_definition"]


class _Owner:
    """Stands in for the state as the context's owner: a feature the
    segment would start is written here, never into the stored state."""

    __slots__ = ("contact_id", "features")

    def __init__(self, contact_id: str, features: dict[str, Any]) -> None:
        self.contact_id = contact_id
        self.features = features


def definition_probe(segment_id: str, catalog: Catalog, now_us: int,
                     accounts: Mapping[str, Mapping[str, Any]],
                     ) -> Callable[[ContactState], bool] | None:
    """``unchanged_by_definition`` bound once for a whole go-live scan (what
    it looks up in the catalogue is the same for every contact); None when
    the segment is not live (apply handles it)."""
    idx = catalog.index
    entry = idx.entries.get(segment_id)
    if entry is None:
        return None
    fn = entry[1]
    control = catalog.limits.control_group
    kept_types, feature_keys = idx.history.keys(), idx.feature_keys

    def unchanged(state: ContactState) -> bool:
        next_due = state.next_due_us()
        if next_due is not None and next_due <= now_us:
            return False
        if control is not None and control.contains(state.contact_id):
            return False
        if not (state.history.keys() <= kept_types and state.features.keys() <= feature_keys):
            return False  # apply would prune them
        ctx = make_ctx(state, accounts, now_us, _Owner(state.contact_id, state.features))
        member, due = fn(ctx, state.contact_id, state.static)
        if ctx._owned:  # a running feature started from the kept history
            return False
        return (member == (state.members.get(segment_id, 0) & 1)
                and state.due.get(segment_id) == due)

    return unchanged


def unchanged_by_definition(state: ContactState, segment_id: str, catalog: Catalog,
                            now_us: int, accounts: Mapping[str, Mapping[str, Any]]) -> bool:
    """True when re-evaluating the live ``segment_id`` for ``state`` at
    ``now_us`` changes neither its membership nor its due instant, and
    nothing else in ``apply`` would change the state."""
    probe = definition_probe(segment_id, catalog, now_us, accounts)
    return probe is not None and probe(state)
