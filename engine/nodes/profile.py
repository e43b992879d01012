"""Profile / firmographic / event-property tests: compare, exists, between."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.context import Ctx
from engine.deps import Deps, merge_deps
from engine.errors import CompileError
from engine.nodes.fields import getter, lit_text, simple_source
from engine.nodes.fused import fused_compare, fused_exists
from engine.nodes.logic import combine_and
from engine.registry import CNode, Env, ValueDue, register
from engine.timeutil import UNIT_US, midnight_us, parse_point, to_us
from engine.trace import Trace
from engine.values import interval_test, scalar_kind, scalar_test
from models.conditions import (
    Between,
    Comparison,
    DateLiteral,
    DateTimeLiteral,
    Exists,
    RelativeTime,
)

__all__ = ["literal_interval", "relative_offset", "static_value_test"]


def literal_interval(lit: DateLiteral | DateTimeLiteral, tzname: str) -> tuple[int, int]:
    """A date literal is its whole local day; a datetime literal one instant."""
    if isinstance(lit, DateLiteral):
        o = lit.date.toordinal()
        return midnight_us(o, tzname), midnight_us(o + 1, tzname)
    us = to_us(lit.datetime)
    return us, us + 1


def relative_offset(rel: RelativeTime) -> int:
    off = rel.amount * UNIT_US[rel.unit]
    return -off if rel.direction == "ago" else off


def static_value_test(op: str, lit: Any, tzname: str) -> Callable[[Any], bool]:
    """A test of one value against a literal that does not move with time."""
    if isinstance(lit, RelativeTime):
        raise CompileError("a relative time cannot be used here")
    if isinstance(lit, (DateLiteral, DateTimeLiteral)):
        ls, le = literal_interval(lit, tzname)
        cmp = interval_test(op)

        def temporal(v: Any) -> bool:
            if type(v) is not str:
                return False
            p = parse_point(v, tzname)
            return p is not None and cmp(p[0], p[1], ls, le)

        return temporal
    return scalar_test(op, lit)


def relative_eval(op: str) -> Callable[[int, int, int], ValueDue]:
    """``value OP (now + off)`` where the value covers ``[s, e)``; called with
    ``S = s - off``, ``E = e - off`` and now. True sets are intervals of now."""
    if op == "<":
        return lambda S, E, now: (now >= E, E if now < E else None)
    if op == "<=":
        return lambda S, E, now: (now >= S, S if now < S else None)
    if op == ">":
        return lambda S, E, now: (now < S, S if now < S else None)
    if op == ">=":
        return lambda S, E, now: (now < E, E if now < E else None)
    if op in ("=", "!="):
        neg = op == "!="

        def eq(S: int, E: int, now: int) -> ValueDue:
            due = S if now < S else (E if now < E else None)
            return ((S <= now < E) != neg), due

        return eq
    raise CompileError(f"operator '{op}' is not defined on relative times")


def _compare_node(field: str, op: str, lit: Any, env: Env, text: str) -> CNode:
    get, deps = getter(field, env)
    if isinstance(lit, RelativeTime):
        off = relative_offset(lit)
        rel = relative_eval(op)
        tz = env.tzname

        def vd(ctx: Ctx) -> ValueDue:
            v = get(ctx)
            if type(v) is not str:
                return False, None
            p = parse_point(v, tz)
            if p is None:
                return False, None
            return rel(p[0] - off, p[1] - off, ctx.now)

        def ev(ctx: Ctx) -> bool:
            return vd(ctx)[0]

        def trace(ctx: Ctx) -> Trace:
            r = vd(ctx)[0]
            return Trace(text, r, seen=get(ctx), threshold=lit_text(lit))

        return CNode(ev, vd, trace, merge_deps([deps, Deps(time=True)]), text)
    test = static_value_test(op, lit, env.tzname)
    simple = simple_source(field, env)
    fused = fused_compare(simple[0], simple[1], op, lit) if simple is not None else None

    def slow(x: Any) -> bool:
        return test(get(x))

    ev2: Callable[[Any], bool] = fused if fused is not None else slow

    def trace2(x: Any) -> Trace:
        v = get(x)
        return Trace(text, test(v), seen=v, threshold=lit_text(lit))

    return CNode(ev2, None, trace2, deps, text)


@register(Comparison)
def _comparison(node: Comparison, env: Env) -> CNode:
    text = f"{node.field} {node.op} {lit_text(node.value)}"
    try:
        return _compare_node(node.field, node.op, node.value, env, text)
    except CompileError as exc:
        raise CompileError(f"segment {env.segment_id!r}: {text}: {exc}") from None


@register(Exists)
def _exists(node: Exists, env: Env) -> CNode:
    get, deps = getter(node.field, env)
    neg = node.negated
    text = f"{node.field} {'not exists' if neg else 'exists'}"

    def slow(x: Any) -> bool:
        return (get(x) is None) is neg

    simple = simple_source(node.field, env)
    ev = fused_exists(simple[0], simple[1], neg) if simple is not None else slow

    def trace(x: Any) -> Trace:
        v = get(x)
        return Trace(text, (v is None) is neg, seen=v)

    return CNode(ev, None, trace, deps, text)


def _between_kind(v: Any) -> str:
    if isinstance(v, (DateLiteral, DateTimeLiteral, RelativeTime)):
        return "t"
    k = scalar_kind(v)
    if k in ("n", "s"):
        return k
    raise CompileError(f"'between' is not defined on {v!r}")


@register(Between)
def _between(node: Between, env: Env) -> CNode:
    text = f"{node.field} between {lit_text(node.low)} and {lit_text(node.high)}"
    try:
        if _between_kind(node.low) != _between_kind(node.high):
            raise CompileError("low and high must be of the same type")
        lo = _compare_node(node.field, ">=", node.low, env, text)
        hi = _compare_node(node.field, "<=", node.high, env, text)
    except CompileError as exc:
        raise CompileError(f"segment {env.segment_id!r}: {text}: {exc}") from None
    get, _ = getter(node.field, env)
    a, b = lo.ev, hi.ev

    def ev(x: Any) -> bool:
        return a(x) and b(x)

    vd = None
    if lo.vd is not None or hi.vd is not None:
        pa = lo.vd or (lambda c: (a(c), None))
        pb = hi.vd or (lambda c: (b(c), None))

        def vd(ctx: Ctx) -> ValueDue:
            return combine_and([pa(ctx), pb(ctx)])

    def trace(x: Any) -> Trace:
        return Trace(text, ev(x), seen=get(x), threshold=(lit_text(node.low), lit_text(node.high)))

    return CNode(ev, vd, trace, merge_deps([lo.deps, hi.deps]), text)
