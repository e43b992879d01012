"""``apply``: one input, one contact -> new state, membership changes, next due.

Every step first catches up with time (segments whose due instant has
passed are re-evaluated with cause ``time``), then applies the input and
re-evaluates only the live segments that depend on what changed, in
dependency order, cascading to segments that reference a changed one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from heapq import heapify, heappop, heappush
from typing import Any

from engine.catalog import Catalog, Index
from engine.commands import AccountChanged, SegmentChanged, Tick, Transition
from engine.context import Ctx
from engine.fastmodel import cause, membership_change
from engine.history import gc_state, is_duplicate, record_event
from engine.state import ContactState
from engine.timeutil import to_us
from models.changes import Cause, MembershipChange
from models.inputs import ContactDelete, ContactUpsert, Interaction, StaticEdit

__all__ = ["Input", "apply", "make_ctx"]

Input = (
    ContactUpsert
    | ContactDelete
    | Interaction
    | StaticEdit
    | Tick
    | SegmentChanged
    | AccountChanged
)

_TIME = cause("time")
_UPDATE = cause("contact_update")
_STATIC = cause("static_edit")
_ERASURE = cause("erasure")
_DEFINITION = cause("definition_change")
_DELETED = cause("segment_deleted")
_EMPTY: Mapping[str, Any] = {}


def make_ctx(st: ContactState, accounts: Mapping[str, Mapping[str, Any]], now_us: int) -> Ctx:
    account = accounts.get(st.account_id, _EMPTY) if st.account_id is not None else _EMPTY
    return Ctx(st.attrs, account, st.consent, st.members, st.history, st.features,  # type: ignore[arg-type]
               now_us)


class _Step:
    """Mutable work area for one apply() call, on a clone of the state.

    ``members``/``versions``/``due`` are shared with the input state until
    the first write (copy on write): most steps change none of them."""

    __slots__ = ("at", "changes", "ctx", "due_own", "idx", "members_own", "st")

    def __init__(self, st: ContactState, idx: Index, ctx: Ctx, at: datetime) -> None:
        self.st = st
        self.idx = idx
        self.ctx = ctx
        self.at = at
        self.changes: list[MembershipChange] = []
        self.members_own = False
        self.due_own = False

    def own_due(self) -> dict[str, int]:
        st = self.st
        if not self.due_own:
            st.due = dict(st.due)
            self.due_own = True
        st.due_changed()
        return st.due

    def emit(self, sid: str, member: bool, version: int, why: Cause) -> None:
        st = self.st
        if not self.members_own:
            st.members = dict(st.members)
            st.versions = dict(st.versions)
            self.ctx.members = st.members
            self.members_own = True
        seq = st.members.get(sid, 0) + 1
        st.members[sid] = seq
        st.versions[sid] = version
        self.changes.append(
            membership_change(sid, st.contact_id, member, self.at, why, version, seq)
        )

    def evaluate(self, seeds: Mapping[str, Cause]) -> None:
        """Re-evaluate ``seeds`` (and, on a change, segments referencing the
        changed one) in dependency order."""
        idx, st, ctx = self.idx, self.st, self.ctx
        live, rank, dependents = idx.live, idx.rank, idx.dependents
        cid, static = st.contact_id, st.static
        causes = dict(seeds)
        heap = [(rank[s], s) for s in causes if s in live]
        if len(heap) > 1:
            heapify(heap)
        queued = set(causes)
        while heap:
            sid = heappop(heap)[1]
            cs = live[sid]
            member, d = cs.evaluate(ctx, cid, static)
            if (d is not None or sid in st.due) and st.due.get(sid) != d:
                if d is None:
                    del self.own_due()[sid]
                else:
                    self.own_due()[sid] = d
            if member != bool(st.members.get(sid, 0) & 1):
                self.emit(sid, member, cs.version, causes[sid])
                for dep in dependents.get(sid, ()):
                    if dep not in queued:
                        queued.add(dep)
                        causes[dep] = cause("segment_change", sid)
                        heappush(heap, (rank[dep], dep))

    def cascade_from(self, sid: str) -> None:
        deps = self.idx.dependents.get(sid, ())
        if deps:
            self.evaluate(dict.fromkeys(deps, cause("segment_change", sid)))


def apply(
    state: ContactState | None,
    inp: Input,
    catalog: Catalog,
    now: datetime,
    accounts: Mapping[str, Mapping[str, Any]],
) -> Transition:
    """Apply one input to one contact. Never reads the system clock."""
    if type(inp) is ContactDelete:
        return _erase(state, catalog, now)
    now_us = to_us(now)
    idx = catalog.index
    created = state is None
    if state is None:
        cid = getattr(inp, "contact_id", None)
        if cid is None:  # Tick / SegmentChanged / AccountChanged for an unknown contact
            return Transition(None, [], None)
        st = ContactState(cid)
    else:
        st = state.clone()
    step = _Step(st, idx, make_ctx(st, accounts, now_us), now)
    nd = st.next_due_us()
    if nd is not None and nd <= now_us:
        overdue = [s for s, d in st.due.items() if d <= now_us]
        if overdue:
            step.evaluate(dict.fromkeys(overdue, _TIME))
            for s in overdue:  # due entries of segments that are no longer live
                if s not in idx.live and s in st.due:
                    del step.own_due()[s]
    seeds = _route(step, inp, catalog, accounts, now_us)
    if created:
        for sid in idx.empty_true:
            seeds.setdefault(sid, _creation_cause(inp))
        for sid in idx.includes.get(st.contact_id, ()):
            seeds.setdefault(sid, _creation_cause(inp))
    if seeds:
        step.evaluate(seeds)
    return Transition(st, step.changes, st.next_due)


def _creation_cause(inp: Input) -> Cause:
    if type(inp) is Interaction:
        return cause("interaction", inp.event_id)
    if type(inp) is StaticEdit:
        return _STATIC
    return _UPDATE


def _route(
    step: _Step,
    inp: Input,
    catalog: Catalog,
    accounts: Mapping[str, Mapping[str, Any]],
    now_us: int,
) -> dict[str, Cause]:
    """Apply the input to the state; return the segments it affects."""
    st, idx = step.st, step.idx
    t = type(inp)
    if t is Interaction:
        return _interaction(step, inp, catalog)  # type: ignore[arg-type]
    if t is ContactUpsert:
        return _upsert(step, inp, accounts, now_us)  # type: ignore[arg-type]
    if t is Tick:
        return {}
    if t is StaticEdit:
        assert isinstance(inp, StaticEdit)
        st.static = {**st.static, inp.segment_id: inp.op == "add"}
        return {inp.segment_id: _STATIC}
    if t is AccountChanged:
        assert isinstance(inp, AccountChanged)
        if st.account_id != inp.account_id:
            return {}
        return dict.fromkeys(idx.by_account, cause("account_update", inp.account_id))
    if t is SegmentChanged:
        assert isinstance(inp, SegmentChanged)
        return _segment_changed(step, inp.segment_id, catalog)
    raise TypeError(f"engine cannot apply {t.__name__}")


def _interaction(step: _Step, inp: Interaction, catalog: Catalog) -> dict[str, Cause]:
    st, idx = step.st, step.idx
    etype = inp.type
    affected = idx.by_type.get(etype)
    if not affected and etype not in idx.history:
        return {}
    if is_duplicate(st, etype, inp.event_id):
        return {}
    record_event(st, step.ctx, idx, catalog.limits, etype, inp.event_id, to_us(inp.occurred_at),
                 inp.properties)
    if not affected:
        return {}
    return dict.fromkeys(affected, cause("interaction", inp.event_id))


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _upsert(
    step: _Step, inp: ContactUpsert, accounts: Mapping[str, Mapping[str, Any]], now_us: int
) -> dict[str, Cause]:
    st, idx = step.st, step.idx
    old = st.attrs
    if inp.mode == "merge":
        new = dict(old)
        for k, v in inp.attributes.items():
            if v is None:
                new.pop(k, None)
            else:
                new[k] = v
        touched: Any = inp.attributes.keys()
        consent = {**st.consent, **inp.consent}
    else:
        new = {k: v for k, v in inp.attributes.items() if v is not None}
        touched = old.keys() | new.keys()
        consent = dict(inp.consent)
    changed = [k for k in touched if not _same(old.get(k), new.get(k))]
    st.attrs = new
    seeds: dict[str, Cause] = {}
    by_field = idx.by_field
    for k in changed:
        for sid in by_field.get(k, ()):
            seeds[sid] = _UPDATE
    if "account_id" in inp.model_fields_set and inp.account_id != st.account_id:
        st.account_id = inp.account_id
        seeds.update(dict.fromkeys(idx.by_account, _UPDATE))
    if consent != st.consent:
        st.consent = consent
        seeds.update(dict.fromkeys(idx.by_consent, _UPDATE))
    step.ctx = make_ctx(st, accounts, now_us)
    return seeds


def _segment_changed(step: _Step, sid: str, catalog: Catalog) -> dict[str, Cause]:
    st = step.st
    gc_state(st, step.idx)
    cs = catalog.compiled(sid)
    if cs is None:  # deleted: leave, forget its static edits, keep the sequence
        if sid in st.due:
            del step.own_due()[sid]
        st.static.pop(sid, None)
        if st.is_member(sid):
            step.emit(sid, False, st.versions.get(sid, 1), _DELETED)
            step.cascade_from(sid)
        return {}
    if cs.defn.status != "live":  # stopped / draft: membership frozen
        if sid in st.due:
            del step.own_due()[sid]
        return {}
    return {sid: _DEFINITION}


def _erase(state: ContactState | None, catalog: Catalog, now: datetime) -> Transition:
    if state is None:
        return Transition(None, [], None)
    changes: list[MembershipChange] = []
    for sid, seq in state.members.items():
        if seq & 1:
            defn = catalog.get(sid)
            version = defn.version if defn is not None else state.versions.get(sid, 1)
            changes.append(
                membership_change(sid, state.contact_id, False, now, _ERASURE, version, seq + 1)
            )
    return Transition(None, changes, None)
