"""Differential test: the incremental engine against a naive recompute.

Random segment definitions (trees built here, over a small vocabulary so
conditions actually flip), random inputs and random clock advances. The
engine is woken only by inputs and by Ticks at the due instants it reports;
after every step its memberships must equal ``tests.naive`` recomputing
every segment from the full, unbounded history — at tick instants and at
arbitrary probe instants in between (a late due time shows up there) — and
each step's changes must be exactly the naive before/after difference, with
sequences alternating joined/left per segment.
"""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import (
    AccountChanged,
    ContactState,
    Limits,
    SegmentChanged,
    Tick,
    apply,
    unchanged_by_definition,
)
from engine.buckets import ControlGroup
from engine.timeutil import to_us
from models.conditions import (
    AggregateCondition,
    AllOf,
    AnniversaryWindow,
    AnyOf,
    Between,
    Bucket,
    Comparison,
    Consented,
    DateLiteral,
    DateTimeLiteral,
    DateWithin,
    EverWindow,
    Exists,
    InSegment,
    LastPerformed,
    Negation,
    Performed,
    RangeWindow,
    RelativeTime,
    RelativeWindow,
)
from models.inputs import ConsentChange, ContactUpsert, Interaction, StaticEdit
from models.segments import SegmentDefinition
from tests.engine_helpers import catalog_of
from tests.naive import NaiveContact, naive_memberships

MAX_EXAMPLES = int(os.environ.get("DIFF_EXAMPLES", "400"))
EXAMPLES_RUN = {"n": 0, "steps": 0, "changes": 0, "probed": 0, "not_probed": 0}

CITIES = ["Paris", "Lyon", "Nice", "paris"]
# The contact each example drives (bucket(…) and the control group depend on
# it); include/exclude lists name c1.
CIDS = ["c1", "c1", "c2", "u-7", "alice@example.com"]
SEEDS = ["spring-test", "a", "b:2"]
CHANNELS = ["email", "sms"]  # consent
TOPICS = [None, "newsletter", "offers"]
PURPOSES = ["commercial", "commercial", "transactional"]
TYPES = ["purchase", "email_opened", "page_visited"]
CATEGORIES = ["shoes", "hats", "bags"]
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe"]
STARTS = [
    datetime(2026, 3, 28, 20, 0, tzinfo=UTC),  # Europe/Paris springs forward on the 29th
    datetime(2026, 10, 24, 21, 30, tzinfo=UTC),  # … and falls back on Oct 25
    datetime(2028, 2, 27, 12, 0, tzinfo=UTC),  # leap year
    datetime(2026, 12, 31, 22, 0, tzinfo=UTC),
]

units = st.sampled_from(["minutes", "hours", "hours", "days", "days", "weeks"])
amounts = st.integers(0, 4)
order_ops = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])


def rel_times() -> st.SearchStrategy[RelativeTime]:
    return st.builds(RelativeTime, amount=amounts, unit=units,
                     direction=st.sampled_from(["ago", "from_now"]))


def temporal_lits(start: datetime) -> st.SearchStrategy[Any]:
    """Literals near the scenario's clock, so they matter."""
    near = st.integers(-4 * 1440, 6 * 1440).map(lambda m: start + timedelta(minutes=m))
    return st.one_of(
        rel_times(), rel_times(),
        near.map(lambda t: DateLiteral(date=t.date())),
        near.map(lambda t: DateTimeLiteral(datetime=t)),
    )


def profile_leaves(start: datetime) -> st.SearchStrategy[Any]:
    within = st.builds(RelativeWindow, direction=st.sampled_from(["last", "next"]),
                       amount=amounts, unit=units)
    temporal = st.one_of(
        st.builds(Comparison, field=st.sampled_from(["signup", "birthday"]), op=order_ops,
                  value=temporal_lits(start)),
        st.builds(Between, field=st.just("signup"), low=temporal_lits(start),
                  high=temporal_lits(start)),
        st.builds(DateWithin, field=st.sampled_from(["signup", "birthday"]), window=within),
        st.builds(AnniversaryWindow, field=st.sampled_from(["birthday", "signup"]),
                  direction=st.sampled_from(["last", "next"]), days=st.integers(0, 10)),
    )
    plain = st.one_of(
        st.builds(Comparison, field=st.just("age"), op=order_ops, value=st.integers(0, 6)),
        st.builds(Comparison, field=st.just("age"), op=st.sampled_from(["in", "not in"]),
                  value=st.lists(st.one_of(st.integers(0, 6), st.just("3")), min_size=1,
                                 max_size=3)),
        st.builds(Comparison, field=st.just("city"), op=st.sampled_from(
            ["=", "!=", "<", "starts with", "contains"]), value=st.sampled_from([*CITIES, "P"])),
        st.builds(Comparison, field=st.just("vip"), op=st.sampled_from(["=", "!="]),
                  value=st.booleans()),
        st.builds(Comparison, field=st.just("tags"), op=st.just("contains"),
                  value=st.sampled_from(["a", "b", 1])),
        st.builds(Comparison, field=st.just("account.size"), op=order_ops,
                  value=st.integers(0, 6)),
        st.builds(Exists, field=st.sampled_from(["age", "city", "signup", "account.size"]),
                  negated=st.booleans()),
        st.builds(Between, field=st.just("age"), low=st.integers(0, 3), high=st.integers(2, 6)),
        st.builds(Bucket, seed=st.sampled_from(SEEDS), op=order_ops,
                  value=st.integers(0, 10_000)),
    )
    return st.one_of(temporal, temporal, plain)


wheres = st.one_of(
    st.none(),
    st.none(),
    st.builds(Comparison, field=st.just("category"), op=st.sampled_from(["=", "!="]),
              value=st.sampled_from(CATEGORIES)),
    st.builds(Comparison, field=st.just("amount"), op=order_ops, value=st.integers(0, 10)),
    # time-relative where clauses read the clock: no running feature possible
    st.builds(DateWithin, field=st.just("due"), window=st.builds(
        RelativeWindow, direction=st.sampled_from(["last", "next"]), amount=st.integers(1, 3),
        unit=st.sampled_from(["hours", "days"]))),
    st.builds(Comparison, field=st.just("due"), op=st.sampled_from(["<", ">="]),
              value=st.builds(RelativeTime, amount=st.integers(0, 3), unit=st.just("days"))),
)


def windows(start: datetime) -> st.SearchStrategy[Any]:
    relative = st.builds(RelativeWindow, direction=st.sampled_from(["last", "last", "next"]),
                         amount=st.integers(0, 3), unit=st.sampled_from(["hours", "days"]))

    @st.composite
    def ranges(draw: st.DrawFn) -> RangeWindow:
        lo = start + timedelta(minutes=draw(st.integers(-4 * 1440, 1440)))
        hi = lo + timedelta(minutes=draw(st.integers(0, 3 * 1440)))
        if draw(st.booleans()):
            return RangeWindow(start=DateLiteral(date=lo.date()), end=DateLiteral(date=hi.date()))
        return RangeWindow(start=DateTimeLiteral(datetime=lo), end=DateTimeLiteral(datetime=hi))

    return st.one_of(st.just(EverWindow()), relative, relative, ranges())


def consent_leaves() -> st.SearchStrategy[Any]:
    return st.builds(Consented, channel=st.sampled_from(CHANNELS[:1] * 3 + CHANNELS),
                     purpose=st.sampled_from(PURPOSES),
                     topic=st.sampled_from(TOPICS[:2] + TOPICS[1:2] * 2 + TOPICS))


def behaviour_leaves(start: datetime) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(Performed, event_type=st.sampled_from(TYPES), where=wheres,
                  count_op=st.sampled_from(["at least", "at least", "at most", "exactly"]),
                  count=st.integers(0, 3), window=windows(start)),
        st.builds(LastPerformed, event_type=st.sampled_from(TYPES), where=wheres,
                  op=st.sampled_from(["before", "after"]), at=temporal_lits(start)),
        st.builds(AggregateCondition, func=st.sampled_from(["sum", "avg", "min", "max"]),
                  property=st.just("amount"), event_type=st.sampled_from(TYPES), where=wheres,
                  window=windows(start), op=order_ops, value=st.integers(0, 25)),
        st.builds(AggregateCondition, func=st.sampled_from(["count distinct", "most frequent"]),
                  property=st.just("category"), event_type=st.sampled_from(TYPES),
                  where=st.none(), window=windows(start),
                  op=st.sampled_from(["=", "!=", ">="]),
                  value=st.one_of(st.sampled_from(CATEGORIES), st.integers(1, 3))),
    )


def time_leaves(start: datetime, windows_only: bool = False) -> st.SearchStrategy[Any]:
    """Single time-sensitive tests (maybe negated): every one reports dues."""
    within = st.builds(RelativeWindow, direction=st.sampled_from(["last", "next"]),
                       amount=st.integers(1, 4), unit=units)
    rel_window = st.builds(RelativeWindow, direction=st.sampled_from(["last", "last", "next"]),
                           amount=st.integers(1, 3), unit=st.sampled_from(["hours", "days"]))
    aggregates = st.builds(
        AggregateCondition, func=st.sampled_from(["sum", "max", "count distinct"]),
        property=st.sampled_from(["amount", "category"]), event_type=st.sampled_from(TYPES),
        where=wheres, window=rel_window, op=st.sampled_from([">=", "<"]),
        value=st.integers(1, 12))
    performed = st.builds(Performed, event_type=st.sampled_from(TYPES), where=wheres,
                          count_op=st.sampled_from(["at least", "at most", "exactly"]),
                          count=st.integers(1, 3), window=rel_window)
    if windows_only:
        return st.one_of(aggregates, performed, st.builds(Negation, arg=performed))
    leaf = st.one_of(
        aggregates, performed,
        st.builds(Comparison, field=st.sampled_from(["signup", "birthday"]), op=order_ops,
                  value=rel_times()),
        st.builds(DateWithin, field=st.sampled_from(["signup", "birthday"]), window=within),
        st.builds(AnniversaryWindow, field=st.sampled_from(["birthday", "signup"]),
                  direction=st.sampled_from(["last", "next"]), days=st.integers(0, 5)),
        performed, aggregates,
        st.builds(LastPerformed, event_type=st.sampled_from(TYPES), where=wheres,
                  op=st.sampled_from(["before", "after"]), at=rel_times()),
    )
    return st.one_of(leaf, leaf, st.builds(Negation, arg=leaf))


def trees(start: datetime, refs: list[str], mode: str = "mixed") -> st.SearchStrategy[Any]:
    if mode in ("time", "windows"):
        return time_leaves(start, windows_only=mode == "windows")
    if mode == "consent":  # consent and splits, with a few profile tests
        leaves = st.one_of(consent_leaves(), consent_leaves(), profile_leaves(start))
    else:
        leaves = st.one_of(profile_leaves(start), behaviour_leaves(start), consent_leaves())
    if refs:
        leaves = st.one_of(leaves, st.builds(InSegment, segment_id=st.sampled_from(refs)))
    return st.recursive(
        leaves,
        lambda kids: st.one_of(
            st.builds(AllOf, args=st.lists(kids, min_size=2, max_size=3)),
            st.builds(AnyOf, args=st.lists(kids, min_size=2, max_size=3)),
            st.builds(Negation, arg=kids),
        ),
        max_leaves=4,
    )


@st.composite
def catalogs(draw: st.DrawFn, start: datetime) -> list[SegmentDefinition]:
    mode = draw(st.sampled_from(["mixed", "time", "windows", "consent"]))
    n = draw(st.integers(1, 5))
    defs: list[SegmentDefinition] = []
    for i in range(n):
        sid = f"s{i}"
        kind = draw(st.sampled_from(["dynamic"] * 5 + ["static"]))
        cond = draw(trees(start, [d.id for d in defs], mode)) if kind == "dynamic" else None
        defs.append(SegmentDefinition.model_construct(
            id=sid, name=sid, kind=kind, condition=cond, status="live",
            version=draw(st.integers(1, 3)), timezone=draw(st.sampled_from(ZONES)),
            include=["c1"] if draw(st.integers(0, 9)) == 0 else [],
            exclude=["c1"] if draw(st.integers(0, 11)) == 0 else [],
        ))
    return defs


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[datetime, list[SegmentDefinition]]:
    start = draw(st.sampled_from(STARTS)) + timedelta(minutes=draw(st.integers(-720, 720)))
    return start, draw(catalogs(start))


def temporal_values(draw: st.DrawFn, now: datetime) -> str:
    off = timedelta(minutes=draw(st.integers(-6 * 24 * 60, 6 * 24 * 60)))
    t = now + off
    style = draw(st.sampled_from(["date", "instant", "naive", "leap"]))
    if style == "date":
        return t.date().isoformat()
    if style == "naive":
        return t.replace(tzinfo=None).isoformat()
    if style == "leap":
        return "2000-02-29"
    return t.isoformat()


@st.composite
def steps(draw: st.DrawFn) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(1, 20))):
        kind = draw(st.sampled_from(
            ["upsert", "upsert", "event", "event", "event", "advance", "advance", "advance",
             "static", "account", "dup", "consent"]))
        out.append((kind, draw(st.integers(0, 2**31))))
    return out


def consent_changes(draw: st.DrawFn, now: datetime) -> list[ConsentChange]:
    """Records for one channel and purpose (mostly e-mail, commercial: what
    the consent leaves test most), channel-wide and per topic so the two
    meet, some late, some without a time."""
    channel = draw(st.sampled_from(CHANNELS[:1] * 3 + CHANNELS))
    purpose = draw(st.sampled_from(PURPOSES))
    return draw(st.lists(st.builds(
        ConsentChange, channel=st.just(channel), purpose=st.just(purpose),
        topic=st.sampled_from(TOPICS[:2] * 2 + TOPICS),
        status=st.sampled_from(["given", "withdrawn"]),
        at=st.one_of(st.none(), st.integers(-3 * 1440, 60).map(
            lambda m: now + timedelta(minutes=m)))), min_size=1, max_size=4))


def make_upsert(draw: st.DrawFn, now: datetime, cid: str = "c1") -> ContactUpsert:
    attrs: dict[str, Any] = {}
    names = ["age", "city", "vip", "tags", "signup", "birthday", "signup", "birthday"]
    for name in draw(st.sets(st.sampled_from(names))):
        if draw(st.integers(0, 5)) == 0:
            attrs[name] = None
        elif name == "age":
            attrs[name] = draw(st.one_of(st.integers(0, 6), st.just("3"), st.just(2.5),
                                         st.just(True)))
        elif name == "city":
            attrs[name] = draw(st.sampled_from(CITIES))
        elif name == "vip":
            attrs[name] = draw(st.one_of(st.booleans(), st.just(1)))
        elif name == "tags":
            attrs[name] = draw(st.lists(st.sampled_from(["a", "b", 1, True]), max_size=2))
        else:
            attrs[name] = temporal_values(draw, now)
    kw: dict[str, Any] = {}
    if draw(st.integers(0, 3)) == 0:
        kw["account_id"] = draw(st.sampled_from(["acc1", "acc2", None]))
    mode = "replace" if draw(st.integers(0, 5)) == 0 else "merge"
    if draw(st.integers(0, 3)) == 0:  # consent flags (the first form)
        kw["consent"] = draw(st.dictionaries(st.sampled_from(CHANNELS), st.booleans(),
                                             max_size=2))
    if draw(st.integers(0, 2)) == 0:
        kw["consents"] = consent_changes(draw, now)
        if draw(st.booleans()):
            kw["updated_at"] = now - timedelta(minutes=draw(st.integers(0, 3 * 1440)))
    return ContactUpsert(contact_id=cid, attributes=attrs, mode=mode, **kw)


@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenario=scenarios(), plan=steps(), data=st.data())
def _incremental_equals_naive(scenario: tuple[datetime, list[SegmentDefinition]],
                                  plan: list[tuple[str, Any]], data: st.DataObject) -> None:
    EXAMPLES_RUN["n"] += 1
    start, defs = scenario
    draw = data.draw
    cid = draw(st.sampled_from(CIDS))
    # A control group one time in four (its members are in no segment).
    control = draw(st.one_of(st.none(), st.none(), st.none(), st.tuples(
        st.sampled_from(SEEDS), st.integers(0, 10_000))))
    catalog = catalog_of(*defs, limits=Limits(
        control_group=ControlGroup(*control) if control is not None else None))
    # A segment going live over this contact's state later on.
    new_segment = SegmentDefinition.model_construct(
        id="s-new", name="s-new", kind="dynamic", status="live", version=1,
        condition=draw(trees(start, [d.id for d in defs])), timezone=draw(st.sampled_from(ZONES)),
        include=[], exclude=[])
    # … in a catalogue that may since have lost its last segment (what only
    # that one read is pruned) and changed its control group.
    kept = defs[:-1] if len(defs) > 1 and draw(st.booleans()) else defs
    control_later = control if draw(st.booleans()) else draw(st.one_of(st.none(), st.tuples(
        st.sampled_from(SEEDS), st.integers(0, 10_000))))
    golive = catalog_of(*kept, new_segment, limits=Limits(
        control_group=ControlGroup(*control_later) if control_later is not None else None))
    accounts: dict[str, dict[str, Any]] = {"acc1": {"size": 3}}
    now = start
    state: ContactState | None = None
    naive = NaiveContact(cid)
    live_seen: list[Interaction] = []
    prev = {d.id: False for d in defs}
    folded: dict[str, bool] = {}
    last_seq: dict[str, int] = {}

    def check(at: datetime, changes: list[Any], where: str) -> None:
        nonlocal prev
        expected = naive_memberships(defs, naive, accounts, at, control) if state is not None else {
            d.id: False for d in defs}
        got = {d.id: state.is_member(d.id) if state is not None else False for d in defs}
        shown = [(d.id, d.kind, d.include, d.exclude, d.condition) for d in defs]
        assert got == expected, (f"{where} at {at}: engine {got} != naive {expected}\ncid={cid} "
                                  f"control={control}\ndefs={shown}\nplan={plan}")
        diff = {(sid, "joined" if v else "left") for sid, v in expected.items() if prev[sid] != v}
        assert {(c.segment_id, c.change) for c in changes} == diff, f"{where} at {at}"
        assert len(changes) == len(diff)
        for c in changes:
            seq = last_seq.get(c.segment_id, 0) + 1
            assert c.sequence == seq and (seq % 2 == 1) == (c.change == "joined")
            last_seq[c.segment_id] = seq
            folded[c.segment_id] = c.change == "joined"
        assert {s for s, v in folded.items() if v} == {s for s, v in got.items() if v}
        prev = expected
        EXAMPLES_RUN["changes"] += len(changes)

    def run(inp: Any, at: datetime) -> list[Any]:
        nonlocal state
        tr = apply(state, inp, catalog, at, accounts)
        state = tr.state
        assert tr.next_due == (state.next_due if state is not None else None)
        if tr.next_due is not None:
            assert tr.next_due > at, "a due time must lie in the future"
        if state is not None:
            assert ContactState.from_bytes(state.to_bytes()) == state
            probe_definitions(state, at)
        return tr.changes

    def probe_definitions(st_: ContactState, at: datetime) -> None:
        """The go-live scan's shortcut: a state the probe calls unchanged by
        a segment's definition change (here: ``s-new`` going live, and the
        others re-applied, now or later) is one apply leaves as it is."""
        before = st_.to_bytes()
        later = at + timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)))
        for t, sid in itertools.product((at, later), [*(d.id for d in defs), "s-new"]):
            if unchanged_by_definition(st_, sid, golive, to_us(t), accounts):
                EXAMPLES_RUN["probed"] += 1
                again = apply(st_, SegmentChanged(sid, None), golive, t, accounts)
                assert again.changes == [] and again.state == st_, (sid, t, plan)
            else:
                EXAMPLES_RUN["not_probed"] += 1
            assert st_.to_bytes() == before  # the probe never writes into the state

    for kind, _seed in plan:
        EXAMPLES_RUN["steps"] += 1
        if kind == "advance":
            target = now + timedelta(minutes=draw(st.integers(1, 3 * 24 * 60)))
            if state is not None and state.next_due is not None and draw(st.booleans()):
                target = state.next_due + timedelta(minutes=draw(st.integers(0, 90)))
            while state is not None and state.next_due is not None and state.next_due <= target:
                just_before = state.next_due - timedelta(microseconds=1)
                if just_before > now:  # nothing may flip before the reported instant
                    check(just_before, [], "before-due")
                now = state.next_due
                check(now, run(Tick(), now), "tick")
            now = target
            check(now, [], "probe")
            continue
        if kind in ("upsert", "consent"):
            inp: Any = make_upsert(draw, now, cid) if kind == "upsert" else ContactUpsert(
                contact_id=cid, consents=consent_changes(draw, now))
            for k, v in inp.attributes.items():
                if inp.mode == "merge":
                    if v is None:
                        naive.attrs.pop(k, None)
                    else:
                        naive.attrs[k] = v
            if inp.mode == "replace":
                naive.attrs = {k: v for k, v in inp.attributes.items() if v is not None}
            if "account_id" in inp.model_fields_set:
                naive.account_id = inp.account_id
            naive.upsert_consent(inp, now)
        elif kind in ("event", "dup"):
            if kind == "dup" and live_seen:
                inp = draw(st.sampled_from(live_seen))
            else:
                inp = Interaction(
                    event_id=f"e{len(live_seen)}", contact_id=cid,
                    type=draw(st.sampled_from(TYPES)),
                    occurred_at=now + timedelta(minutes=draw(st.integers(-5 * 1440, 2 * 1440))),
                    properties={"amount": draw(st.one_of(st.integers(0, 10), st.just("5"))),
                                "category": draw(st.sampled_from(CATEGORIES)),
                                "due": (now + timedelta(minutes=draw(st.integers(
                                    -3 * 1440, 3 * 1440)))).isoformat()},
                )
                live_seen.append(inp)
            naive.add_event(inp)
        elif kind == "static":
            inp = StaticEdit(segment_id=draw(st.sampled_from([d.id for d in defs])),
                             contact_id=cid, op=draw(st.sampled_from(["add", "remove"])))
            naive.static[inp.segment_id] = inp.op == "add"
        else:
            accounts[draw(st.sampled_from(["acc1", "acc2"]))] = {"size": draw(st.integers(0, 6))}
            inp = AccountChanged(account_id=naive.account_id or "acc1")
        check(now, run(inp, now), kind)


def test_incremental_equals_naive() -> None:
    """The hypothesis run, then a check that it really ran that many
    examples (in the same test: no reliance on test order)."""
    EXAMPLES_RUN.update(n=0, steps=0, changes=0, probed=0, not_probed=0)
    _incremental_equals_naive()
    print(f"\ndifferential: {EXAMPLES_RUN['n']} examples, {EXAMPLES_RUN['steps']} steps, "
          f"{EXAMPLES_RUN['changes']} changes checked, {EXAMPLES_RUN['probed']} probes "
          f"said unchanged, {EXAMPLES_RUN['not_probed']} maybe changed")
    assert EXAMPLES_RUN["n"] >= min(MAX_EXAMPLES, 50)
    assert EXAMPLES_RUN["probed"] > 0 and EXAMPLES_RUN["not_probed"] > 0
