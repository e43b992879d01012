"""Segment lifecycle, compound cascades, accounts, static edits, the index."""

from __future__ import annotations

from typing import Any

from engine import AccountChanged, SegmentChanged, Tick, explain
from models.conditions import (
    AllOf,
    Comparison,
    InSegment,
    Negation,
    Performed,
    RelativeWindow,
)
from models.inputs import ContactUpsert, StaticEdit
from tests.engine_helpers import Harness, catalog_of, interaction, seg, upsert, utc

NOW = utc(2026, 2, 1)
AGE = Comparison(field="age", op=">=", value=18)


def test_going_live_changing_stopping_deleting() -> None:
    h = Harness(catalog_of(seg("s", AGE, status="draft")))
    h(upsert(age=30), NOW)
    assert h.members() == set()  # draft: not evaluated
    h.catalog = h.catalog.put(seg("s", AGE, version=2))
    ch = h(SegmentChanged("s"), NOW)
    assert [(c.change, c.cause.kind, c.segment_version) for c in ch] == [
        ("joined", "definition_change", 2)]
    # a change that keeps the contact in emits nothing
    h.catalog = h.catalog.put(seg("s", Comparison(field="age", op=">=", value=21), version=3))
    assert h(SegmentChanged("s"), NOW) == []
    # stopped: frozen, even when the contact no longer matches
    h.catalog = h.catalog.put(seg("s", AGE, version=4, status="stopped"))
    assert h(SegmentChanged("s"), NOW) == []
    assert h(upsert(age=5), NOW) == [] and h.members() == {"s"}
    # live again: the difference is emitted
    h.catalog = h.catalog.put(seg("s", AGE, version=5))
    ch = h(SegmentChanged("s"), NOW)
    assert [(c.change, c.sequence) for c in ch] == [("left", 2)]
    h(upsert(age=50), NOW)
    # deleted: leaves, and the sequence survives for a future segment of that id
    h.catalog = h.catalog.remove("s")
    ch = h(SegmentChanged("s"), NOW)
    assert [(c.change, c.cause.kind, c.sequence) for c in ch] == [("left", "segment_deleted", 4)]
    h.catalog = h.catalog.put(seg("s", AGE, version=6))
    ch = h(SegmentChanged("s"), NOW)
    assert [(c.change, c.sequence) for c in ch] == [("joined", 5)]


def test_compound_segments_cascade_in_dependency_order() -> None:
    cat = catalog_of(
        seg("adults", AGE),
        seg("buyers", Performed(event_type="purchase")),
        seg("adult_buyers", AllOf(args=[InSegment(segment_id="adults"),
                                        InSegment(segment_id="buyers")]), kind="compound"),
        seg("others", Negation(arg=InSegment(segment_id="adult_buyers")), kind="compound"),
    )
    h = Harness(cat)
    ch = h(upsert(age=30), NOW)
    assert [c.segment_id for c in ch] == ["adults", "others"]
    ch = h(interaction("purchase", NOW), NOW)
    assert [(c.segment_id, c.change, c.cause.kind, c.cause.ref) for c in ch] == [
        ("buyers", "joined", "interaction", ch[0].cause.ref),
        ("adult_buyers", "joined", "segment_change", "buyers"),
        ("others", "left", "segment_change", "adult_buyers"),
    ]
    # deleting a referenced segment cascades too
    h.catalog = h.catalog.remove("buyers")
    ch = h(SegmentChanged("buyers"), NOW)
    assert [(c.segment_id, c.change) for c in ch] == [
        ("buyers", "left"), ("adult_buyers", "left"), ("others", "joined")]


def test_account_changes_reevaluate_firmographic_segments() -> None:
    cat = catalog_of(seg("big", Comparison(field="account.size", op=">=", value=100)))
    accounts: dict[str, Any] = {"a1": {"size": 10}}
    h = Harness(cat, accounts)
    h(ContactUpsert(contact_id="c1", account_id="a1"), NOW)
    assert h.members() == set()
    h.accounts["a1"] = {"size": 500}
    ch = h(AccountChanged("a1"), NOW)
    assert [(c.change, c.cause.kind, c.cause.ref) for c in ch] == [
        ("joined", "account_update", "a1")]
    assert h(AccountChanged("other"), NOW) == []
    ch = h(ContactUpsert(contact_id="c1", account_id=None), NOW)  # explicit null clears
    assert h.left(ch) == {"big"}
    h(ContactUpsert(contact_id="c1", account_id="a1"), NOW)
    assert h(ContactUpsert(contact_id="c1", attributes={"x": 1}), NOW) == []  # absent: unchanged
    assert h.members() == {"big"}


def test_static_edits_include_exclude() -> None:
    cat = catalog_of(
        seg("list", kind="static", include=["c1"]),
        seg("dyn", AGE, exclude=["c2"]),
    )
    h = Harness(cat)
    ch = h(upsert(age=3), NOW)
    assert h.joined(ch) == {"list"}
    ch = h(StaticEdit(segment_id="list", contact_id="c1", op="remove"), NOW)
    assert [(c.change, c.cause.kind) for c in ch] == [("left", "static_edit")]
    h(StaticEdit(segment_id="dyn", contact_id="c1", op="add"), NOW)
    assert h.members() == {"dyn"}  # forced in although age < 18
    h(StaticEdit(segment_id="dyn", contact_id="c1", op="remove"), NOW)
    assert h.members() == set()  # removing the add lets the condition decide again
    h2 = Harness(cat)
    h2(upsert("c2", age=40), NOW)
    assert h2.members() == set()  # exclude wins
    h3 = Harness(cat)
    h3(StaticEdit(segment_id="list", contact_id="c9", op="add"), NOW)
    assert h3.members() == {"list"}


def test_inputs_reevaluate_only_affected_segments() -> None:
    defs = [seg(f"age{i}", Comparison(field="age", op=">=", value=i)) for i in range(50)]
    defs += [seg(f"city{i}", Comparison(field="city", op="=", value=f"c{i}")) for i in range(50)]
    defs += [seg(f"buy{i}", Performed(event_type="purchase", count=i + 1,
                                      window=RelativeWindow(amount=i + 1, unit="days")))
             for i in range(10)]
    h = Harness(catalog_of(*defs))
    h(upsert(age=10, city="c1"), NOW)
    seen: list[str] = []
    entries = h.catalog.index.entries
    for sid, (rank, fn, version, deps) in list(entries.items()):
        def counting(*a: Any, _sid: str = sid, _f: Any = fn) -> Any:
            seen.append(_sid)
            return _f(*a)

        entries[sid] = (rank, counting, version, deps)
    h(upsert(city="c2"), NOW)
    assert sorted(seen) == sorted(f"city{i}" for i in range(50))
    seen.clear()
    h(interaction("purchase", NOW), NOW)
    assert sorted(seen) == sorted(f"buy{i}" for i in range(10))
    seen.clear()
    h(interaction("page_visited", NOW), NOW)
    assert seen == []
    seen.clear()
    h(Tick(), utc(2026, 2, 2, 0, 0, 1))
    assert seen == ["buy0"]


def test_events_a_where_clause_rejects_do_not_reevaluate() -> None:
    spring = Comparison(field="campaign", op="=", value="spring")
    cat = catalog_of(
        seg("spring", Performed(event_type="email_opened", where=spring,
                                window=RelativeWindow(amount=3, unit="days"))),
        seg("any", Performed(event_type="email_opened")),
    )
    assert set(cat.index.type_filters["email_opened"]) == {"spring"}
    h = Harness(cat)
    h(upsert(x=1), NOW)
    seen: list[str] = []
    entries = h.catalog.index.entries
    for sid, (rank, fn, version, deps) in list(entries.items()):
        def counting(*a: Any, _sid: str = sid, _f: Any = fn) -> Any:
            seen.append(_sid)
            return _f(*a)

        entries[sid] = (rank, counting, version, deps)
    h(interaction("email_opened", NOW, campaign="autumn"), NOW)
    assert seen == ["any"]
    seen.clear()
    h(interaction("email_opened", NOW, campaign="spring"), NOW)
    assert sorted(seen) == ["any", "spring"] and h.members() == {"any", "spring"}


def test_explain_behavioural_trace() -> None:
    cond = AllOf(args=[AGE, Performed(event_type="purchase", count=2,
                                      window=RelativeWindow(amount=30, unit="days"))])
    h = Harness(catalog_of(seg("s", cond)))
    h(upsert(age=40), NOW)
    h(interaction("purchase", NOW), NOW)
    text = str(explain(h.state, "s", h.catalog, NOW, {}))
    assert "performed purchase at least 2 times within last 30 days" in text
    assert "seen='1 times'" in text and "[false]" in text
    assert "not in the catalog" in str(explain(h.state, "zz", h.catalog, NOW, {}))


def test_new_contact_excluded_from_an_empty_true_segment_updates_its_dependents() -> None:
    """Found by the differential test: ``others = not in segment "anon"``
    must hold for a new contact that ``anon``'s exclude list keeps out."""
    from models.conditions import Exists

    cat = catalog_of(
        seg("anon", Exists(field="age", negated=True), exclude=["c1"]),
        seg("others", Negation(arg=InSegment(segment_id="anon")), kind="compound"),
    )
    assert cat.index.empty_true == ("anon",)
    h = Harness(cat)
    h(ContactUpsert(contact_id="c1"), NOW)
    assert h.members() == {"others"}
    h2 = Harness(cat)
    h2(ContactUpsert(contact_id="c2"), NOW)
    assert h2.members() == {"anon"}
