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

_TIME = Cause(kind="time")
_UPDATE = Cause(kind="contact_update")
_STATIC = Cause(kind="static_edit")
_ERASURE = Cause(kind="erasure")
_DEFINITION = Cause(kind="definition_change")
_DELETED = Cause(kind="segment_deleted")
_EMPTY: Mapping[str, Any] = {}


def make_ctx(st: ContactState, accounts: Mapping[str, Mapping[str, Any]], now_us: int) -> Ctx:
    account = accounts.get(st.account_id, _EMPTY) if st.account_id is not None else _EMPTY
    return Ctx(st.attrs, account, st.consent, st.members, st.history, st.features,  # type: ignore[arg-type]
               now_us)


class _Step:
    """Mutable work area for one apply() call (on a clone of the state)."""

    __slots__ = ("at", "changes", "ctx", "idx", "st")

    def __init__(self, st: ContactState, idx: Index, ctx: Ctx, at: datetime) -> None:
        self.st = st
        self.idx = idx
        self.ctx = ctx
        self.at = at
        self.changes: list[MembershipChange] = []

    def emit(
        self, sid: str, member: bool, prev: list[Any] | None, version: int, cause: Cause
    ) -> None:
        seq = (prev[1] if prev is not None else 0) + 1
        self.st.members[sid] = [member, seq, version]
        self.changes.append(
            MembershipChange.model_construct(
                segment_id=sid,
                contact_id=self.st.contact_id,
                change="joined" if member else "left",
                at=self.at,
                cause=cause,
                segment_version=version,
                sequence=seq,
            )
        )

    def evaluate(self, seeds: Mapping[str, Cause]) -> None:
        idx, st, ctx = self.idx, self.st, self.ctx
        live, rank, dependents = idx.live, idx.rank, idx.dependents
        members, due, static, cid = st.members, st.due, st.static, st.contact_id
        causes = dict(seeds)
        heap = [(rank[s], s) for s in causes if s in live]
        heapify(heap)
        done: set[str] = set()
        while heap:
            _, sid = heappop(heap)
            if sid in done:
                continue
            done.add(sid)
            cs = live[sid]
            member, d = cs.evaluate(ctx, cid, static)
            if d is None:
                if sid in due:
                    del due[sid]
            else:
                due[sid] = d
            e = members.get(sid)
            was = e is not None and e[0]
            version = cs.defn.version
            if member != was:
                self.emit(sid, member, e, version, causes[sid])
                for dep in dependents.get(sid, ()):
                    if dep not in done:
                        if dep not in causes:
                            causes[dep] = Cause(kind="segment_change", ref=sid)
                        heappush(heap, (rank[dep], dep))
            elif e is not None and e[2] != version:
                members[sid] = [was, e[1], version]

    def cascade_from(self, sid: str) -> None:
        deps = self.idx.dependents.get(sid, ())
        if deps:
            cause = Cause(kind="segment_change", ref=sid)
            self.evaluate(dict.fromkeys(deps, cause))


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
    if st.due:
        overdue = [s for s, d in st.due.items() if d <= now_us]
        if overdue:
            step.evaluate(dict.fromkeys(overdue, _TIME))
            for s in overdue:  # due entries of segments that are no longer live
                if s not in idx.live:
                    st.due.pop(s, None)
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
        return Cause(kind="interaction", ref=inp.event_id)
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
        cause = Cause(kind="account_update", ref=inp.account_id)
        return dict.fromkeys(idx.by_account, cause)
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
    return dict.fromkeys(affected, Cause(kind="interaction", ref=inp.event_id))


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
        st.due.pop(sid, None)
        st.static.pop(sid, None)
        e = st.members.get(sid)
        if e is not None and e[0]:
            step.emit(sid, False, e, e[2], _DELETED)
            step.cascade_from(sid)
        return {}
    if cs.defn.status != "live":  # stopped / draft: membership frozen
        st.due.pop(sid, None)
        return {}
    return {sid: _DEFINITION}


def _erase(state: ContactState | None, catalog: Catalog, now: datetime) -> Transition:
    if state is None:
        return Transition(None, [], None)
    changes: list[MembershipChange] = []
    for sid, e in state.members.items():
        if e[0]:
            defn = catalog.get(sid)
            changes.append(
                MembershipChange.model_construct(
                    segment_id=sid,
                    contact_id=state.contact_id,
                    change="left",
                    at=now,
                    cause=_ERASURE,
                    segment_version=defn.version if defn is not None else e[2],
                    sequence=e[1] + 1,
                )
            )
    return Transition(None, changes, None)
