"""Behavioural conditions, dedup, late events, bounded history."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from engine import CompileError, Limits, Tick
from models.conditions import (
    AggregateCondition,
    Comparison,
    DateLiteral,
    EverWindow,
    LastPerformed,
    Negation,
    Performed,
    RangeWindow,
    RelativeTime,
    RelativeWindow,
)
from tests.engine_helpers import Harness, catalog_of, interaction, seg, utc

T0 = utc(2026, 5, 1, 12)
US = timedelta(microseconds=1)
SPRING = Comparison(field="campaign", op="=", value="spring")


def last(n: int, unit: str = "days") -> RelativeWindow:
    return RelativeWindow(amount=n, unit=unit)  # type: ignore[arg-type]


def h_for(cond: Any, **kw: Any) -> Harness:
    return Harness(catalog_of(seg("s", cond, **kw)))


def test_performed_at_least_n_within_window_and_due_when_third_falls_out() -> None:
    cond = Performed(event_type="email_opened", where=SPRING, count=3, window=last(30))
    h = h_for(cond)
    times = [T0 - timedelta(days=d) for d in (20, 10, 5)]
    for t in times:
        h(interaction("email_opened", t, campaign="spring"), T0)
    h(interaction("email_opened", T0, campaign="autumn"), T0)  # filtered out by where
    assert h.members() == {"s"}
    # the oldest of the three leaves the window 30 days (inclusive) after it happened
    due = times[0] + timedelta(days=30) + US
    assert h.last is not None and h.last.next_due == due
    assert h(Tick(), due - US) == []
    assert h.left(h(Tick(), due)) == {"s"}


def test_due_skips_expiries_that_do_not_flip() -> None:
    cond = Performed(event_type="purchase", count=2, window=last(10))
    h = h_for(cond)
    for d in (9, 8, 1):
        h(interaction("purchase", T0 - timedelta(days=d)), T0)
    # 3 in window; dropping to 2 changes nothing, dropping to 1 does
    assert h.last is not None
    assert h.last.next_due == T0 - timedelta(days=8) + timedelta(days=10) + US


def test_not_performed_absence_and_future_events() -> None:
    cond = Negation(arg=Performed(event_type="purchase", window=last(90)))
    h = h_for(cond)
    h(interaction("page_visited", T0), T0)
    assert h.members() == {"s"}  # new contact with no purchase
    h(interaction("purchase", T0 - timedelta(days=1)), T0)
    assert h.members() == set()
    assert h.last is not None and h.last.next_due == T0 + timedelta(days=89) + US


def test_dedup_by_event_id_and_late_events_placed_by_time() -> None:
    cond = Performed(event_type="purchase", count=2, window=EverWindow())
    h = h_for(cond)
    h(interaction("purchase", T0, event_id="x"), T0)
    assert h(interaction("purchase", T0, event_id="x"), T0) == []
    assert h.members() == set()
    late = interaction("purchase", T0 - timedelta(days=400), event_id="y")
    assert h.joined(h(late, T0)) == {"s"}


def test_late_event_inside_relative_window() -> None:
    h = h_for(Performed(event_type="purchase", count=2, window=last(7)))
    h(interaction("purchase", T0 - timedelta(days=1)), T0)
    h(interaction("purchase", T0 - timedelta(days=30)), T0)  # too old: ignored
    assert h.members() == set()
    h(interaction("purchase", T0 - timedelta(days=6)), T0)  # late but in window
    assert h.members() == {"s"}


def test_range_window_end_date_covers_whole_local_day() -> None:
    rng = RangeWindow(start=DateLiteral.model_validate({"date": "2026-01-01"}),
                      end=DateLiteral.model_validate({"date": "2026-03-31"}))
    h = h_for(Performed(event_type="purchase", window=rng), timezone="America/New_York")
    h(interaction("purchase", utc(2026, 4, 1, 3, 59)), T0)  # 23:59 on Mar 31 in New York
    assert h.members() == {"s"}
    h2 = h_for(Performed(event_type="purchase", window=rng), timezone="America/New_York")
    h2(interaction("purchase", utc(2026, 1, 1, 4, 59)), T0)  # 23:59 on Dec 31 in New York
    assert h2.members() == set()


def test_last_performed_before_relative_time() -> None:
    ago = RelativeTime(amount=180, unit="days")
    cond = LastPerformed(event_type="purchase", op="before", at=ago)
    h = h_for(cond)
    h(interaction("purchase", T0 - timedelta(days=100)), T0)
    assert h.members() == set()
    due = T0 + timedelta(days=80) + US
    assert h.last is not None and h.last.next_due == due
    assert h.joined(h(Tick(), due)) == {"s"}
    h(interaction("purchase", due), due)  # a new purchase resets recency
    assert h.members() == set()


def test_last_performed_never_is_false() -> None:
    cond = LastPerformed(event_type="purchase", op="before", at=RelativeTime(amount=1, unit="days"))
    h = h_for(cond)
    h(interaction("page_visited", T0), T0)
    assert h.members() == set()


@pytest.mark.parametrize(
    ("func", "prop", "op", "value", "expected"),
    [
        ("sum", "amount", ">=", 60, True), ("sum", "amount", ">", 60, False),
        ("avg", "amount", "=", 20, True), ("min", "amount", "=", 10, True),
        ("max", "amount", "=", 30, True), ("count distinct", "category", "=", 2, True),
        ("most frequent", "category", "=", "shoes", True),
        ("most frequent", "category", "=", "hats", False),
    ],
)
def test_aggregates(func: str, prop: str, op: str, value: Any, expected: bool) -> None:
    cond = AggregateCondition(func=func, property=prop, event_type="purchase", op=op, value=value)  # type: ignore[arg-type]
    h = h_for(cond)
    for amount, cat in ((10, "shoes"), (20, "hats"), (30, "shoes"), ("x", "shoes")):
        h(interaction("purchase", T0, amount=amount, category=cat), T0)
    assert (h.members() == {"s"}) is expected


def test_aggregate_over_nothing_is_missing() -> None:
    cond = AggregateCondition(func="sum", property="amount", event_type="purchase", op="<", value=1)
    h = h_for(cond)
    h(interaction("purchase", T0, category="no amount"), T0)
    assert h.members() == set()


def test_most_frequent_tie_goes_to_most_recent() -> None:
    cond = AggregateCondition(func="most frequent", property="c", event_type="purchase",
                              op="=", value="b")
    h = h_for(cond)
    h(interaction("purchase", T0, c="a"), T0)
    h(interaction("purchase", T0 + US, c="b"), T0)
    assert h.members() == {"s"}


def test_aggregate_relative_window_and_relative_literal_refused() -> None:
    cond = AggregateCondition(func="sum", property="amount", event_type="purchase",
                              window=last(7), op=">=", value=100)
    h = h_for(cond)
    h(interaction("purchase", T0 - timedelta(days=2), amount=60), T0)
    h(interaction("purchase", T0, amount=50), T0)
    assert h.members() == {"s"}
    assert h.last is not None and h.last.next_due == T0 + timedelta(days=5) + US
    with pytest.raises(CompileError):
        catalog_of(seg("x", AggregateCondition(func="max", property="t", event_type="purchase",
                                               op=">", value=RelativeTime(amount=1, unit="days")),
                       raw=True))


def test_history_keeps_only_needed_types_props_and_window() -> None:
    cond = Performed(event_type="purchase", where=Comparison(field="sku", op="=", value="A"),
                     window=last(7))
    h = h_for(cond)
    h(interaction("purchase", T0 - timedelta(days=1), sku="A", noise="x" * 100), T0)
    h(interaction("page_visited", T0, url="/"), T0)
    h(interaction("purchase", T0 - timedelta(days=20), sku="A"), T0)  # older than any window
    assert h.state is not None
    assert list(h.state.history) == ["purchase"]
    assert [e[2] for e in h.state.history["purchase"]] == [{"sku": "A"}]


def test_history_cap_and_features_stay_exact_beyond_it() -> None:
    cat = catalog_of(
        seg("recent", Performed(event_type="purchase", count=5, window=last(365))),
        seg("ever", Performed(event_type="purchase", count=8, window=EverWindow())),
        limits=Limits(max_events_per_type=4, max_seen_ids=4),
    )
    h = Harness(cat)
    for i in range(8):
        h(interaction("purchase", T0 - timedelta(days=i)), T0)
    assert h.state is not None and len(h.state.history["purchase"]) == 4
    assert len(h.state.seen) == 4
    assert h.members() == {"ever"}  # running count is exact; the capped window is not


def test_where_refuses_contact_level_conditions() -> None:
    from models.conditions import InSegment

    with pytest.raises(CompileError, match="where"):
        catalog_of(seg("x", Performed(event_type="purchase", where=InSegment(segment_id="a")),
                       raw=True))
