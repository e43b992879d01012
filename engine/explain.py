"""``explain``: why is (or isn't) this contact in that segment right now?"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from engine.apply import make_ctx
from engine.buckets import bucket
from engine.catalog import Catalog
from engine.state import ContactState
from engine.timeutil import to_us
from engine.trace import Trace

__all__ = ["explain"]


def explain(
    state: ContactState | None,
    segment_id: str,
    catalog: Catalog,
    now: datetime,
    accounts: Mapping[str, Mapping[str, Any]],
) -> Trace:
    """A per-condition trace (value seen, threshold, result). ``str()`` of the
    result is a readable, indented report. Does not change ``state``."""
    cs = catalog.compiled(segment_id)
    if cs is None:
        return Trace(f'segment "{segment_id}" is not in the catalog (not a member)', False)
    if state is None:
        return Trace(f'segment "{segment_id}": unknown contact (not a member)', False)
    st = state.clone()
    trace = cs.trace(make_ctx(st, accounts, to_us(now)), st.contact_id, st.static)
    stored = st.is_member(segment_id)
    control = catalog.limits.control_group
    if control is not None and control.contains(st.contact_id):
        # The condition's trace stays (what the contact would be), but the
        # control group wins over everything, include lists and static adds too.
        trace.result = False
        trace.children.insert(0, Trace(
            f"contact is in the control group (SEGMENTFLOW_CONTROL_GROUP {control}: "
            f'bucket("{control.seed}") < {control.buckets}): kept out of every segment',
            True, seen=bucket(control.seed, st.contact_id), threshold=control.buckets))
    if cs.defn.status != "live":
        trace.children.append(
            Trace(f"segment is {cs.defn.status}: membership frozen at {stored}", stored)
        )
    elif stored != trace.result:
        trace.children.append(Trace(f"stored membership {stored} (a due re-evaluation is pending)",
                                    stored))
    return trace
