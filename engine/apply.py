"""``apply``: one input, one contact -> new state, membership changes, next due.

Every step first catches up with time (segments whose due instant has
passed are re-evaluated with cause ``time``), then applies the input and
re-evaluates only the live segments that depend on what changed, in
dependency order, cascading to segments that reference a changed one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from heapq import heapify, heappop, heappush
from typing import Any

from engine.catalog import Catalog, Index, closure
from engine.commands import AccountChanged, SegmentChanged, Tick, Transition
from engine.context import Ctx
from engine.fastmodel import cause, membership_change
from engine.history import gc_state, is_duplicate, record_event
from engine.nodes.consent import consent_key
from engine.state import SEQ_MASK, ContactState
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


def make_ctx(st: ContactState, accounts: Mapping[str, Mapping[str, Any]], now_us: int,
             owner: Any = None) -> Ctx:
    """The context of ``st``; a running feature started while evaluating is
    written into ``owner``'s features (``st`` by default)."""
    account = accounts.get(st.account_id, _EMPTY) if st.account_id is not None else _EMPTY
    return Ctx(st.attrs, account, st.consent, st.members, st.history,  # type: ignore[arg-type]
               st.features, now_us, st if owner is None else owner)


class _Step:
    """Mutable work area for one apply() call, on a clone of the state.

    ``members`` and ``due`` are shared with the input state until
    the first write (copy on write): most steps change none of them."""

    __slots__ = ("at", "causes", "changes", "ctx", "due_own", "entries", "idx", "members_own",
                 "st")

    def __init__(self, st: ContactState, idx: Index, ctx: Ctx, at: datetime,
                 control: bool = False) -> None:
        self.st = st
        self.idx = idx
        # a contact in the control group is evaluated with closures that say
        # "not a member" for every segment (engine/buckets.py)
        self.entries = idx.control_entries if control else idx.entries
        self.ctx = ctx
        self.at = at
        self.changes: list[MembershipChange] = []
        self.members_own = False
        self.due_own = False
        #: per-segment causes overriding the step's one (an upsert that changed
        #: consent and attributes: consent-dependent segments get ``consent``)
        self.causes: dict[str, Cause] | None = None

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
            self.ctx.members = st.members
            self.members_own = True
        seq = (st.members.get(sid, 0) & SEQ_MASK) + 1
        st.members[sid] = seq | version << 32
        self.changes.append(
            membership_change(sid, st.contact_id, member, self.at, why, version, seq)
        )

    def evaluate(self, sids: Iterable[str], why: Cause, ordered: bool = False) -> None:
        """Re-evaluate the live segments among ``sids`` and, when one changes,
        the segments referencing it, in dependency (rank) order. ``ordered``
        says ``sids`` is one index tuple: unique, live and already ranked."""
        entries = self.entries
        if ordered:
            order: Sequence[str] = sids  # type: ignore[assignment]
        else:
            order = sorted({s for s in sids if s in entries}, key=lambda s: entries[s][0])
        if self.causes is not None:
            self._run({s: self.causes.get(s, why) for s in order}, None, ())
            return
        st, ctx = self.st, self.ctx
        cid, static = st.contact_id, st.static
        # Fast path: ranked seeds, one by one, until a change has dependents.
        for i, sid in enumerate(order):
            _, fn, version, dependents = entries[sid]
            member, d = fn(ctx, cid, static)
            due = st.due
            if (d is not None or sid in due) and due.get(sid) != d:
                if d is None:
                    del self.own_due()[sid]
                else:
                    self.own_due()[sid] = d
            if member != (st.members.get(sid, 0) & 1):
                self.emit(sid, member, version, why)
                if dependents:
                    self._run(dict.fromkeys(order[i + 1:], why), sid, dependents)
                    return

    def _run(self, causes: dict[str, Cause], changed: str | None,
             dependents: tuple[str, ...]) -> None:
        """Slow path: the seeds (``causes``: live segment -> its cause) plus
        segments referencing changed ones, through a heap ordered by rank."""
        entries = self.entries
        st, ctx = self.st, self.ctx
        cid, static = st.contact_id, st.static
        rest = list(causes)
        heap = [(entries[s][0], s) for s in rest]
        queued = set(rest)

        def enqueue(sid: str, deps: tuple[str, ...]) -> None:
            for dep in deps:
                if dep not in queued:
                    queued.add(dep)
                    causes[dep] = cause("segment_change", sid)
                    heappush(heap, (entries[dep][0], dep))

        if changed is not None:
            enqueue(changed, dependents)
        heapify(heap)
        while heap:
            sid = heappop(heap)[1]
            _, fn, version, deps = entries[sid]
            member, d = fn(ctx, cid, static)
            due = st.due
            if (d is not None or sid in due) and due.get(sid) != d:
                if d is None:
                    del self.own_due()[sid]
                else:
                    self.own_due()[sid] = d
            if member != (st.members.get(sid, 0) & 1):
                self.emit(sid, member, version, causes[sid])
                if deps:
                    enqueue(sid, deps)

    def cascade_from(self, sid: str) -> None:
        deps = self.idx.dependents.get(sid, ())
        if deps:
            self.evaluate(deps, cause("segment_change", sid), ordered=True)


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
    control = catalog.limits.control_group
    in_control = control is not None and control.contains(st.contact_id)
    step = _Step(st, idx, make_ctx(st, accounts, now_us), now, in_control)
    nd = st.next_due_us()
    if nd is not None and nd <= now_us:
        overdue = [s for s, d in st.due.items() if d <= now_us]
        step.evaluate(overdue, _TIME)
        gone = [s for s in overdue if s not in idx.live and s in st.due]
        for s in gone:  # due entries of segments that are no longer live
            del step.own_due()[s]
    sids, why, ordered = _route(step, inp, catalog, accounts, now_us)
    if created:
        cid = st.contact_id
        listed = idx.includes.get(cid, ()) + idx.excludes.get(cid, ())
        if listed:
            listed = closure(listed, idx.dependents, idx.rank)
        extra = idx.new_contact + listed
        if extra:
            sids, ordered = (*sids, *extra), False
    if in_control:
        # Members from before the control group was set (or widened) leave
        # at the contact's next step, with that step's cause.
        stale = [s for s, packed in st.members.items() if packed & 1 and s in idx.live]
        if stale:
            sids, ordered = (*sids, *stale), False
    if sids:
        step.evaluate(sids, why, ordered)
    return Transition(st, step.changes, st.next_due)


Routed = tuple[Sequence[str], Cause, bool]  # (segment ids, cause, ids ranked and unique)
_NOTHING: Routed = ((), _UPDATE, True)


def _route(
    step: _Step,
    inp: Input,
    catalog: Catalog,
    accounts: Mapping[str, Mapping[str, Any]],
    now_us: int,
) -> Routed:
    """Apply the input to the state; return the segments it affects."""
    st, idx = step.st, step.idx
    t = type(inp)
    if t is Interaction:
        return _interaction(step, inp, catalog)  # type: ignore[arg-type]
    if t is ContactUpsert:
        return _upsert(step, inp, accounts, now_us)  # type: ignore[arg-type]
    if t is Tick:
        return _NOTHING
    if t is StaticEdit:
        assert isinstance(inp, StaticEdit)
        st.static[inp.segment_id] = inp.op == "add"
        return (inp.segment_id,), _STATIC, False
    if t is AccountChanged:
        assert isinstance(inp, AccountChanged)
        if st.account_id != inp.account_id:
            return _NOTHING
        return idx.by_account, cause("account_update", inp.account_id), True
    if t is SegmentChanged:
        assert isinstance(inp, SegmentChanged)
        return _segment_changed(step, inp.segment_id, catalog)
    raise TypeError(f"engine cannot apply {t.__name__}")


def _interaction(step: _Step, inp: Interaction, catalog: Catalog) -> Routed:
    st, idx = step.st, step.idx
    etype = inp.type
    why = cause("interaction", inp.event_id)
    if is_duplicate(st, etype, inp.event_id):
        return (), why, True
    affected = idx.by_type.get(etype, ())
    if not affected and etype not in idx.history:
        # Read by no live segment: nothing to store (the runtime's archive
        # keeps it, a same-time duplicate under the same key).
        return (), why, True
    t = to_us(inp.occurred_at)
    props = inp.properties
    record_event(st, step.ctx, idx, catalog.limits, etype, inp.event_id, t, props)
    return route_event(idx, etype, affected, t, props), why, True


def route_event(idx: Index, etype: str, affected: tuple[str, ...], t: int,
                props: dict[str, Any]) -> tuple[str, ...]:
    """``affected`` (segments reading ``etype``, rank order) without those
    whose static ``where`` / absolute range this event cannot pass."""
    filters = idx.type_filters.get(etype)
    if not filters:
        return affected
    routes = idx.type_routes.get(etype)
    if routes is None:
        return tuple(s for s in affected if (f := filters.get(s)) is None or f(t, props))
    # A segment that requires another value of a property is not even tried.
    routed, by_value = routes
    for prop, values in by_value.items():
        value = props.get(prop)
        if type(value) is str and (hit := values.get(value)) is not None:
            routed = routed | hit
    return tuple(s for s in affected
                 if s in routed and ((f := filters.get(s)) is None or f(t, props)))


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _consent(st: ContactState, inp: ContactUpsert, now_us: int) -> dict[str, Any]:
    """The consent map after ``inp``: its flags (the first form: merged, or
    all replaced in replace mode) and its records (``"channel/purpose/topic"``
    -> ``[given, at_us]``, engine/nodes/consent.py), the newest ``at`` per key
    winning (equal: the later record). Records are never dropped, not even
    by replace mode: they are the contact's consent history."""
    old = st.consent
    if inp.mode == "merge":
        if not inp.consent and not inp.consents:
            return old
        consent = {**old, **inp.consent}
    else:
        consent = {k: v for k, v in old.items() if type(v) is list}
        consent.update(inp.consent)
    if inp.consents:
        default_at = to_us(inp.updated_at) if inp.updated_at is not None else now_us
        for rec in inp.consents:
            key = consent_key(rec.channel, rec.purpose, rec.topic)
            at = to_us(rec.at) if rec.at is not None else default_at
            was = consent.get(key)
            if type(was) is list and was[1] > at:
                continue  # an older record arriving late
            consent[key] = [rec.status == "given", at]
    return consent


def _upsert(
    step: _Step, inp: ContactUpsert, accounts: Mapping[str, Mapping[str, Any]], now_us: int
) -> Routed:
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
    else:
        new = {k: v for k, v in inp.attributes.items() if v is not None}
        touched = old.keys() | new.keys()
    consent = _consent(st, inp, now_us)
    changed = [k for k in touched if not _same(old.get(k), new.get(k))]
    st.attrs = new
    by_field = idx.by_field
    groups = [g for k in changed if (g := by_field.get(k))]
    if "account_id" in inp.model_fields_set and inp.account_id != st.account_id:
        st.account_id = inp.account_id
        groups.append(idx.by_account)
    consent_cause: Cause | None = None
    if consent != st.consent:
        keys = [k for k in consent.keys() | st.consent.keys()
                if not _same(consent.get(k), st.consent.get(k))]
        consent_cause = cause("consent", keys[0] if len(keys) == 1 else None)
        st.consent = consent
    step.ctx = make_ctx(st, accounts, now_us)
    if consent_cause is not None and idx.by_consent:
        # A withdrawal (or a consent given) re-evaluates every segment that
        # reads consent, with cause consent, in this step.
        if not groups:
            return idx.by_consent, consent_cause, True
        step.causes = dict.fromkeys(idx.by_consent, consent_cause)
        groups.append(idx.by_consent)
    if not groups:
        return (), _UPDATE, True
    if len(groups) == 1:
        return groups[0], _UPDATE, True
    return [s for g in groups for s in g], _UPDATE, False


def _segment_changed(step: _Step, sid: str, catalog: Catalog) -> Routed:
    st = step.st
    if gc_state(st, step.idx):
        step.ctx.adopt(st.features, st.history)  # a fresh copy: this step owns it
    else:
        step.ctx.history = st.history
    cs = catalog.compiled(sid)
    if cs is None:  # deleted: leave, forget its static edits, keep the sequence
        if sid in st.due:
            del step.own_due()[sid]
        st.static.pop(sid, None)
        if st.is_member(sid):
            step.emit(sid, False, st.members[sid] >> 32, _DELETED)
            step.cascade_from(sid)
        return _NOTHING
    if cs.defn.status != "live":  # stopped / draft: membership frozen
        if sid in st.due:
            del step.own_due()[sid]
        return _NOTHING
    return (sid,), _DEFINITION, True


def _erase(state: ContactState | None, catalog: Catalog, now: datetime) -> Transition:
    if state is None:
        return Transition(None, [], None)
    # Every pair with a sequence gets a `left` (cause erasure), former
    # members too (at the next even number: a gap, odd still = joined): the
    # contact may come back under the same id with sequences from 1, and a
    # consumer resets a pair's mark only on an erasure it sees.
    changes: list[MembershipChange] = []
    for sid, packed in state.members.items():
        seq = packed & SEQ_MASK
        defn = catalog.get(sid)
        version = defn.version if defn is not None else packed >> 32
        left_seq = seq + 1 if seq & 1 else seq + 2
        changes.append(
            membership_change(sid, state.contact_id, False, now, _ERASURE, version, left_seq)
        )
    return Transition(None, changes, None)
