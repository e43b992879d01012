"""Public API: upsert/delete, sequences, serialization, catalog, cycles."""

from __future__ import annotations

from typing import Any

import pytest

from engine import Catalog, CompileError, ContactState, CycleError, Tick, apply, explain
from models.conditions import AllOf, AnyOf, Comparison, Exists, InSegment, Negation
from models.inputs import ContactDelete, ContactUpsert
from tests.engine_helpers import Harness, catalog_of, seg, upsert, utc

NOW = utc(2026, 3, 1, 12)
ADULT = Comparison(field="age", op=">=", value=18)


def test_join_leave_sequences_alternate() -> None:
    h = Harness(catalog_of(seg("adults", ADULT)))
    ch = h(upsert(age=20), NOW)
    assert [(c.change, c.sequence, c.cause.kind) for c in ch] == [("joined", 1, "contact_update")]
    ch = h(upsert(age=17), NOW)
    assert [(c.change, c.sequence) for c in ch] == [("left", 2)]
    assert h(upsert(age=16), NOW) == []
    ch = h(upsert(age=30), NOW)
    assert [(c.change, c.sequence) for c in ch] == [("joined", 3)]
    assert all(c.sequence % 2 == (c.change == "joined") for c in h.changes)
    assert h.state is not None and h.state.membership("adults") == (True, 3, 1)
    assert h.state.membership("other") is None


def test_only_affected_segments_change_and_untouched_fields_do_not_reevaluate() -> None:
    paris = Comparison(field="city", op="=", value="Paris")
    cat = catalog_of(seg("adults", ADULT), seg("paris", paris))
    h = Harness(cat)
    h(upsert(age=20, city="Paris"), NOW)
    assert h.members() == {"adults", "paris"}
    assert cat.index.by_field == {"age": ("adults",), "city": ("paris",)}
    assert h(upsert(name="x"), NOW) == []


def test_merge_null_removes_and_replace_mode() -> None:
    h = Harness(catalog_of(seg("noemail", Exists(field="email", negated=True))))
    ch = h(upsert(email="a@b"), NOW)
    assert ch == []
    assert h.members() == set()
    ch = h(upsert(email=None), NOW)
    assert h.joined(ch) == {"noemail"}
    h(upsert(email="a@b"), NOW)
    ch = h(upsert(mode="replace", age=3), NOW)
    assert h.joined(ch) == {"noemail"}
    assert h.state is not None and h.state.attrs == {"age": 3}


def test_new_contact_joins_segments_true_for_an_empty_profile() -> None:
    cat = catalog_of(seg("anon", Negation(arg=Exists(field="email"))), seg("adults", ADULT))
    assert cat.index.empty_true == ("anon",)
    h = Harness(cat)
    assert h.joined(h(upsert(name="x"), NOW)) == {"anon"}


def test_delete_leaves_every_segment_and_erases_state() -> None:
    old = Comparison(field="age", op=">", value=60)
    h = Harness(catalog_of(seg("adults", ADULT), seg("old", old)))
    h(upsert(age=70), NOW)
    tr = apply(h.state, ContactDelete(contact_id="c1"), h.catalog, NOW, {})
    assert tr.state is None and tr.next_due is None
    assert {(c.segment_id, c.change, c.sequence, c.cause.kind) for c in tr.changes} == {
        ("adults", "left", 2, "erasure"),
        ("old", "left", 2, "erasure"),
    }
    assert apply(None, ContactDelete(contact_id="zz"), h.catalog, NOW, {}).changes == []


def test_delete_tells_former_members_too() -> None:
    """A contact erased after it left a segment gets a `left` (erasure) there
    too, at the next even sequence: consumers reset the pair's mark on it,
    so the same id re-created later (sequences from 1 again) is not dropped
    by their sequence filter."""
    h = Harness(catalog_of(seg("adults", ADULT)))
    h(upsert(age=70), NOW)
    h(upsert(age=3), NOW)
    assert h.state is not None and h.state.membership("adults") == (False, 2, 1)
    tr = apply(h.state, ContactDelete(contact_id="c1"), h.catalog, NOW, {})
    assert [(c.segment_id, c.change, c.sequence, c.cause.kind) for c in tr.changes] == [
        ("adults", "left", 4, "erasure")]


def test_state_round_trips_through_bytes() -> None:
    h = Harness(catalog_of(seg("adults", ADULT)))
    h(ContactUpsert(contact_id="c1", attributes={"age": 20, "tags": ["a"], "x": {"y": 1.5}},
                    account_id="acc", consent={"email": True}), NOW)
    assert h.state is not None
    raw = h.state.to_bytes()
    back = ContactState.from_bytes(raw)
    assert back == h.state and back.to_bytes() == raw
    assert back.account_id == "acc" and back.consent == {"email": True}


def test_apply_does_not_mutate_input_state() -> None:
    h = Harness(catalog_of(seg("adults", ADULT)))
    h(upsert(age=20), NOW)
    before = h.state
    assert before is not None
    snapshot = before.to_bytes()
    apply(before, upsert(age=1), h.catalog, NOW, {})
    assert before.to_bytes() == snapshot


def test_logic_and_or_not_any_depth() -> None:
    cond = AnyOf(args=[
        AllOf(args=[ADULT, Comparison(field="city", op="in", value=["Paris", "Lyon"])]),
        Negation(arg=AnyOf(args=[Exists(field="age"), Exists(field="city")])),
    ])
    cat = catalog_of(seg("s", cond))
    for attrs, expected in [
        ({"age": 20, "city": "Lyon"}, True),
        ({"age": 20, "city": "Nice"}, False),
        ({}, True),
        ({"city": "Lyon"}, False),
    ]:
        h = Harness(cat)
        h(upsert(mode="replace", **attrs), NOW)
        assert h.members() == ({"s"} if expected else set()), attrs


def test_cycle_refused_with_path() -> None:
    cat = catalog_of(seg("a", InSegment(segment_id="b")))
    cat = cat.put(seg("b", InSegment(segment_id="c")))
    with pytest.raises(CycleError, match="c -> a -> b -> c"):
        cat.put(seg("c", Negation(arg=InSegment(segment_id="a"))))
    with pytest.raises(CycleError, match="x -> x"):
        cat.put(seg("x", InSegment(segment_id="x"), raw=True))


def test_unknown_reference_is_not_member_and_catalog_api() -> None:
    cat = catalog_of(seg("a", InSegment(segment_id="ghost")), seg("d", ADULT, status="draft"))
    assert len(cat) == 2 and cat.live_ids() == ["a"]
    assert cat.get("d") is not None and cat.get("zz") is None
    assert len(cat.remove("d")) == 1 and len(cat) == 2
    h = Harness(cat)
    h(upsert(age=40), NOW)
    assert h.members() == set()


def test_compile_errors_are_raised_at_put() -> None:
    for bad in [
        Comparison(field="flag", op="<", value=True),
        Comparison(field="n", op="starts with", value=3),
        Comparison(field="n", op="in", value=3),
        Comparison(field="n", op="=", value=[1, 2]),
    ]:
        with pytest.raises(CompileError):
            Catalog.empty().put(seg("s", bad, raw=True))


def test_tick_and_control_inputs_on_unknown_contact_are_noops() -> None:
    cat = catalog_of(seg("adults", ADULT))
    tr = apply(None, Tick(), cat, NOW, {})
    assert tr.state is None and tr.changes == []


def test_explain_reports_values_and_thresholds() -> None:
    h = Harness(catalog_of(seg("adults", AllOf(args=[ADULT, Exists(field="email")]))))
    h(upsert(age=17), NOW)
    text = str(explain(h.state, "adults", h.catalog, NOW, {}))
    assert "age >= 18" in text and "seen=17" in text and "email exists" in text


def test_changes_equal_validated_models() -> None:
    from models.changes import MembershipChange

    h = Harness(catalog_of(seg("adults", ADULT)))
    (c,) = h(upsert(age=20), NOW)
    again = MembershipChange.model_validate(c.model_dump())
    assert again == c and again.model_dump_json() == c.model_dump_json()
    assert c.model_fields_set == again.model_fields_set


def test_no_input_kind_mutates_the_state_it_is_given() -> None:
    from engine import SegmentChanged
    from models.conditions import EverWindow, Performed, RelativeWindow
    from tests.engine_helpers import interaction

    ever = Performed(event_type="purchase", window=EverWindow())
    recent = Performed(event_type="purchase", window=RelativeWindow(amount=1, unit="days"))
    h = Harness(catalog_of(seg("ever", ever), seg("recent", recent)))
    h(upsert(age=1), NOW)
    steps: list[tuple[Any, Any]] = [
        (interaction("purchase", NOW), h.catalog),
        (Tick(), h.catalog),
        (SegmentChanged("adults"), h.catalog.put(seg("adults", ADULT))),
        # a new running feature, initialised lazily from the kept history
        (SegmentChanged("two"), h.catalog.put(seg("two", Performed(
            event_type="purchase", count=2, window=EverWindow())))),
        (SegmentChanged("ever"), h.catalog.remove("ever")),
        (ContactDelete(contact_id="c1"), h.catalog),
    ]
    for inp, cat in steps:
        before = h.state
        assert before is not None
        snapshot = before.to_bytes()
        tr = apply(before, inp, cat, NOW, {})
        assert before.to_bytes() == snapshot, inp
        if tr.state is not None:
            h.state, h.catalog = tr.state, cat
