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

from collections.abc import Mapping
from typing import Any

from engine.apply import make_ctx
from engine.catalog import Catalog
from engine.state import ContactState

__all__ = ["unchanged_by_definition"]


class _Owner:
    """Stands in for the state as the context's owner: a feature the
    segment would start is written here, never into the stored state."""

    __slots__ = ("contact_id", "features")

    def __init__(self, contact_id: str, features: dict[str, Any]) -> None:
        self.contact_id = contact_id
        self.features = features


def unchanged_by_definition(state: ContactState, segment_id: str, catalog: Catalog,
                            now_us: int, accounts: Mapping[str, Mapping[str, Any]]) -> bool:
    """True when re-evaluating the live ``segment_id`` for ``state`` at
    ``now_us`` changes neither its membership nor its due instant, and
    nothing else in ``apply`` would change the state."""
    idx = catalog.index
    entry = idx.entries.get(segment_id)
    if entry is None:  # not live (deleted, stopped): apply handles it
        return False
    next_due = state.next_due_us()
    if next_due is not None and next_due <= now_us:
        return False
    control = catalog.limits.control_group
    if control is not None and control.contains(state.contact_id):
        return False
    if not (state.history.keys() <= idx.history.keys()
            and state.features.keys() <= idx.feature_keys):
        return False  # apply would prune them
    ctx = make_ctx(state, accounts, now_us, _Owner(state.contact_id, state.features))
    member, due = entry[1](ctx, state.contact_id, state.static)
    if ctx._owned:  # a running feature started from the kept history
        return False
    return (member == (state.members.get(segment_id, 0) & 1)
            and state.due.get(segment_id) == due)
