"""Calendar conditions on date attributes: ``within last/next N unit`` and
yearly anniversaries, evaluated in the segment's time zone."""

from __future__ import annotations

import calendar
from datetime import date

from engine.context import Ctx
from engine.deps import Deps, merge_deps
from engine.nodes.fields import getter
from engine.registry import CNode, Env, ValueDue, register
from engine.timeutil import UNIT_US, midnight_us, parse_point
from engine.trace import Trace
from models.conditions import AnniversaryWindow, DateWithin

__all__ = ["anniversary"]


def _interval(S: int, E: int, now: int) -> ValueDue:
    return S <= now < E, (S if now < S else (E if now < E else None))


@register(DateWithin)
def _date_within(node: DateWithin, env: Env) -> CNode:
    """Instants: ``last d`` is true for now in ``[t, t+d]``. A calendar-day
    value with a days/weeks window compares local days: ``last 14 days`` is
    true from that day's midnight through the 14th day after it."""
    get, deps = getter(node.field, env)
    w = node.window
    tz = env.tzname
    d = w.amount * UNIT_US[w.unit]
    ndays = w.amount * (7 if w.unit == "weeks" else 1)
    calendar_days = w.unit in ("days", "weeks")
    last = w.direction == "last"
    text = f"{node.field} within {w.direction} {w.amount} {w.unit}"

    def vd(ctx: Ctx) -> ValueDue:
        v = get(ctx)
        if type(v) is not str:
            return False, None
        p = parse_point(v, tz)
        if p is None:
            return False, None
        if p[2] and calendar_days:
            o = p[3]
            if last:
                return _interval(midnight_us(o, tz), midnight_us(o + ndays + 1, tz), ctx.now)
            return _interval(midnight_us(o - ndays, tz), midnight_us(o + 1, tz), ctx.now)
        if last:
            return _interval(p[0], p[1] + d, ctx.now)
        return _interval(p[0] - d, p[1], ctx.now)

    def ev(ctx: Ctx) -> bool:
        return vd(ctx)[0]

    def trace(ctx: Ctx) -> Trace:
        return Trace(text, vd(ctx)[0], seen=get(ctx))

    return CNode(ev, vd, trace, merge_deps([deps, Deps(time=True)]), text)


def anniversary(month: int, day: int, year: int) -> int:
    """Ordinal of the anniversary in ``year``; Feb 29 falls on Feb 28 in
    non-leap years."""
    if month == 2 and day == 29 and not calendar.isleap(year):
        day = 28
    return date(year, month, day).toordinal()


@register(AnniversaryWindow)
def _anniversary(node: AnniversaryWindow, env: Env) -> CNode:
    get, deps = getter(node.field, env)
    tz = env.tzname
    n = node.days
    nxt = node.direction == "next"
    text = f"{node.field} in {node.direction} {n} days"

    def vd(ctx: Ctx) -> ValueDue:
        v = get(ctx)
        if type(v) is not str:
            return False, None
        p = parse_point(v, tz)
        if p is None:
            return False, None
        if n >= 366:  # every 367-day span holds an anniversary
            return True, None
        born = date.fromordinal(p[3])
        today = ctx.today(tz)
        y0 = date.fromordinal(today).year
        value = False
        due: int | None = None
        for y in range(y0 - 2, y0 + 3):
            a = anniversary(born.month, born.day, y)
            lo, hi = (a - n, a + 1) if nxt else (a, a + n + 1)  # days T with value true
            if lo <= today < hi:
                value = True
            for c in (lo, hi):
                if c > today and (due is None or c < due):
                    due = c
        return value, (midnight_us(due, tz) if due is not None else None)

    def ev(ctx: Ctx) -> bool:
        return vd(ctx)[0]

    def trace(ctx: Ctx) -> Trace:
        return Trace(text, vd(ctx)[0], seen=get(ctx))

    return CNode(ev, vd, trace, merge_deps([deps, Deps(time=True)]), text)
