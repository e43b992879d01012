"""Routing an interaction to the segments it can change (engine.apply.route_event)
looks segments up by the property value their ``where`` requires instead of
calling every segment's filter. Property: it routes exactly the segments the
naive way does (every filter called, engine/catalog.py ``type_filters``)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.apply import route_event
from engine.timeutil import to_us
from models.conditions import (
    AggregateCondition,
    AllOf,
    AnyOf,
    Comparison,
    Condition,
    DateLiteral,
    EverWindow,
    Negation,
    Performed,
    RangeWindow,
)
from tests.engine_helpers import catalog_of, seg, utc

TYPES = ("purchase", "page_visited")
PROPS = ("campaign", "sku")
TEXTS = ("a", "b", "c")

comparisons = st.builds(
    Comparison, field=st.sampled_from(PROPS), op=st.sampled_from(["=", "=", "!=", "in"]),
    value=st.sampled_from(TEXTS)).map(
        lambda c: c.model_copy(update={"value": [c.value, "z"]}) if c.op == "in" else c)
numbers = st.builds(Comparison, field=st.just("amount"), op=st.sampled_from(["=", ">"]),
                    value=st.integers(0, 3))
leaves = st.one_of(comparisons, comparisons, numbers)
wheres = st.one_of(
    st.none(), leaves,
    st.builds(AllOf, args=st.lists(leaves, min_size=2, max_size=3)),
    st.builds(AnyOf, args=st.lists(leaves, min_size=2, max_size=2)),
    st.builds(Negation, arg=leaves))
windows = st.one_of(st.just(EverWindow()), st.just(RangeWindow(
    start=DateLiteral(date="2026-01-01"), end=DateLiteral(date="2026-01-31"))))


@st.composite
def uses(draw: Any) -> Condition:
    etype = draw(st.sampled_from(TYPES))
    where, window = draw(wheres), draw(windows)
    if draw(st.booleans()):
        return Performed(event_type=etype, where=where, window=window)
    return AggregateCondition(func="sum", property="amount", event_type=etype, where=where,
                              window=window, op=">", value=1)


conditions = st.one_of(
    uses(), st.builds(AnyOf, args=st.lists(uses(), min_size=2, max_size=2)),
    st.builds(AllOf, args=st.lists(uses(), min_size=2, max_size=2)))
# mostly strings: the routing index is about string values
values = st.one_of(st.sampled_from(TEXTS), st.sampled_from(TEXTS), st.sampled_from(TEXTS),
                   st.integers(0, 3), st.booleans(), st.none())
events = st.tuples(
    st.sampled_from(TYPES),
    st.sampled_from([utc(2025, 12, 31), utc(2026, 1, 15), utc(2026, 2, 1)]),
    st.fixed_dictionaries({}, optional={"campaign": values, "sku": values,
                                        "amount": st.integers(0, 3)}))


@settings(max_examples=400, deadline=None)
@given(st.lists(conditions, min_size=1, max_size=8), st.lists(events, min_size=1, max_size=12))
def test_routing_by_required_value_routes_what_every_filter_would(
    conds: list[Condition], evs: list[tuple[str, Any, dict[str, Any]]],
) -> None:
    idx = catalog_of(*(seg(f"s{n}", c) for n, c in enumerate(conds))).index
    for etype, at, props in evs:
        affected = idx.by_type.get(etype, ())
        t = to_us(at)
        filters = idx.type_filters.get(etype, {})
        naive = tuple(s for s in affected if (f := filters.get(s)) is None or f(t, props))
        assert route_event(idx, etype, affected, t, props) == naive


def test_a_where_requiring_a_value_is_looked_up_by_it() -> None:
    """The index is used at all: two segments each requiring one campaign."""
    cat = catalog_of(*(seg(f"s-{c}", Performed(event_type="purchase", where=AllOf(args=[
        Comparison(field="campaign", op="=", value=c),
        Comparison(field="amount", op=">", value=1)]))) for c in TEXTS))
    idx = cat.index
    always, by_value = idx.type_routes["purchase"]
    assert always == frozenset()
    assert by_value == {"campaign": {c: frozenset([f"s-{c}"]) for c in TEXTS}}
    affected = idx.by_type["purchase"]
    t = to_us(utc(2026, 1, 1))
    assert route_event(idx, "purchase", affected, t, {"campaign": "b", "amount": 2}) == ("s-b",)
    assert route_event(idx, "purchase", affected, t, {"campaign": "b", "amount": 0}) == ()
    assert route_event(idx, "purchase", affected, t, {"campaign": 1, "amount": 2}) == ()
