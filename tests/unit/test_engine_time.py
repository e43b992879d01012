"""Time: relative windows, due instants, DST, leap days, Tick."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine import Tick
from models.conditions import (
    AnniversaryWindow,
    Comparison,
    DateWithin,
    RelativeTime,
    RelativeWindow,
)
from tests.engine_helpers import Harness, catalog_of, seg, upsert, utc

US = timedelta(microseconds=1)
PARIS = ZoneInfo("Europe/Paris")


def harness(cond: Any, tz: str = "UTC") -> Harness:
    return Harness(catalog_of(seg("s", cond, timezone=tz)))


def within(field: str, n: int, unit: str = "days", direction: str = "last") -> DateWithin:
    return DateWithin(field=field, window=RelativeWindow(direction=direction, amount=n, unit=unit))  # type: ignore[arg-type]


def test_within_last_is_inclusive_at_both_ends_and_due_is_exact() -> None:
    h = harness(within("signup", 14))
    t0 = utc(2026, 1, 1, 10)
    h(upsert(signup=t0.isoformat()), t0)  # now == value: inside
    assert h.members() == {"s"}
    end = t0 + timedelta(days=14)
    assert h.last is not None and h.last.next_due == end + US
    assert h(Tick(), end) == [] and h.members() == {"s"}  # now - 14d == value: still inside
    ch = h(Tick(), end + US)
    assert [(c.change, c.cause.kind) for c in ch] == [("left", "time")]
    assert h.last is not None and h.last.next_due is None


def test_future_value_enters_window_at_its_instant() -> None:
    h = harness(within("renewal", 2, "hours", "next"))
    t0 = utc(2026, 1, 1)
    h(upsert(renewal="2026-01-01T05:00:00+00:00"), t0)
    assert h.members() == set()
    assert h.last is not None and h.last.next_due == utc(2026, 1, 1, 3)
    assert h.joined(h(Tick(), utc(2026, 1, 1, 3))) == {"s"}
    assert h.last.next_due == utc(2026, 1, 1, 5) + US


def test_date_only_value_uses_local_calendar_days_across_dst() -> None:
    # Paris springs forward on 2026-03-29: that day is 23 hours long.
    h = harness(within("signup", 1), tz="Europe/Paris")
    h(upsert(signup="2026-03-28"), utc(2026, 3, 28, 12))
    assert h.members() == {"s"}
    leave = datetime(2026, 3, 30, 0, 0, tzinfo=PARIS)  # midnight after "today - 1"
    assert h.last is not None and h.last.next_due == leave
    assert h(Tick(), leave - US) == []
    assert h.left(h(Tick(), leave)) == {"s"}
    assert leave.astimezone(ZoneInfo("UTC")) == utc(2026, 3, 29, 22)


def test_relative_comparison_flips_exactly() -> None:
    # "signup before 30 days ago": true once value < now - 30d
    cond = Comparison(field="signup", op="<", value=RelativeTime(amount=30, unit="days"))
    h = harness(cond)
    v = utc(2026, 1, 1)
    h(upsert(signup=v.isoformat()), v)
    due = v + timedelta(days=30) + US
    assert h.last is not None and h.last.next_due == due
    assert h(Tick(), due - US) == []
    assert h.joined(h(Tick(), due)) == {"s"}
    assert h.last.next_due is None


def test_relative_comparison_with_date_value_flips_at_local_midnight() -> None:
    cond = Comparison(field="trial_end", op="<", value=RelativeTime(amount=0, unit="days"))
    h = harness(cond, tz="America/New_York")
    h(upsert(trial_end="2026-11-01"), utc(2026, 10, 31))  # NY falls back on Nov 1
    midnight = datetime(2026, 11, 2, tzinfo=ZoneInfo("America/New_York"))
    assert h.last is not None and h.last.next_due == midnight
    assert h.joined(h(Tick(), midnight)) == {"s"}


def test_birthday_feb_29_counts_on_feb_28_in_non_leap_years() -> None:
    cond = AnniversaryWindow(field="birthday", direction="next", days=0)
    h = harness(cond)
    h(upsert(birthday="2000-02-29"), utc(2027, 2, 27, 12))
    assert h.members() == set()
    assert h.last is not None and h.last.next_due == utc(2027, 2, 28)
    assert h.joined(h(Tick(), utc(2027, 2, 28))) == {"s"}
    assert h.last.next_due == utc(2027, 3, 1)
    assert h.left(h(Tick(), utc(2027, 3, 1))) == {"s"}
    # in a leap year the birthday is Feb 29 itself
    h2 = harness(cond)
    h2(upsert(birthday="2000-02-29"), utc(2028, 2, 28, 12))
    assert h2.members() == set() and h2.last is not None
    assert h2.last.next_due == utc(2028, 2, 29)


def test_birthday_in_next_7_days_in_segment_zone() -> None:
    cond = AnniversaryWindow(field="birthday", direction="next", days=7)
    h = harness(cond, tz="Europe/Paris")
    h(upsert(birthday="1990-07-01"), utc(2026, 6, 23, 21, 59))  # 23:59 in Paris, June 23
    assert h.members() == set()
    assert h.last is not None and h.last.next_due == datetime(2026, 6, 24, tzinfo=PARIS)
    assert h.joined(h(Tick(), datetime(2026, 6, 24, tzinfo=PARIS))) == {"s"}
    assert h.last.next_due == datetime(2026, 7, 2, tzinfo=PARIS)


def test_birthday_in_last_days_and_year_wrap() -> None:
    cond = AnniversaryWindow(field="birthday", direction="last", days=3)
    h = harness(cond)
    h(upsert(birthday="1980-12-30"), utc(2027, 1, 1, 8))
    assert h.members() == {"s"}
    assert h.last is not None and h.last.next_due == utc(2027, 1, 3)


def test_catch_up_on_input_after_missed_due() -> None:
    """An input arriving after a due time first applies the time change."""
    h = harness(within("signup", 1, "hours"))
    h(upsert(signup="2026-01-01T00:00:00Z", x=1), utc(2026, 1, 1))
    ch = h(upsert(x=2), utc(2026, 1, 1, 5))
    assert [(c.change, c.cause.kind) for c in ch] == [("left", "time")]


def test_tick_only_reevaluates_due_segments() -> None:
    cat = catalog_of(seg("t", within("signup", 1, "hours")),
                     seg("p", Comparison(field="x", op="=", value=1)))
    h = Harness(cat)
    h(upsert(signup="2026-01-01T00:00:00Z", x=1), utc(2026, 1, 1))
    assert h.state is not None and set(h.state.due) == {"t"}
    assert h(Tick(), utc(2026, 1, 1, 0, 30)) == []
    assert h.left(h(Tick(), utc(2026, 1, 1, 2))) == {"t"}
    assert h.members() == {"p"} and h.state.due == {}
