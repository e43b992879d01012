"""and / or / not, with time-aware due propagation.

A false ``and`` cannot turn true before every false child has flipped, so
its due time is the latest of those children's; a true ``and`` can turn false
as soon as any child flips. ``or`` is the dual; ``not`` keeps its child's.
"""

from __future__ import annotations

from typing import Any

from engine.context import Ctx
from engine.deps import merge_deps
from engine.registry import CNode, Env, ValueDue, compile_node, register
from engine.trace import Trace
from models.conditions import AllOf, AnyOf, Negation

__all__ = ["combine_and", "combine_or"]


def _pairs(children: tuple[CNode, ...], ctx: Ctx) -> list[ValueDue]:
    return [c.vd(ctx) if c.vd is not None else (c.ev(ctx), None) for c in children]


def _due_all_flip(dues: list[int | None]) -> int | None:
    """Every one of these must flip first: the latest, or never if one never does."""
    if not dues or any(d is None for d in dues):
        return None
    return max(d for d in dues if d is not None)


def _due_any_flip(dues: list[int | None]) -> int | None:
    ds = [d for d in dues if d is not None]
    return min(ds) if ds else None


def combine_and(res: list[ValueDue]) -> ValueDue:
    if all(v for v, _ in res):
        return True, _due_any_flip([d for _, d in res])
    return False, _due_all_flip([d for v, d in res if not v])


def combine_or(res: list[ValueDue]) -> ValueDue:
    if any(v for v, _ in res):
        return True, _due_all_flip([d for v, d in res if v])
    return False, _due_any_flip([d for _, d in res])


def _ordered(children: list[CNode]) -> tuple[CNode, ...]:
    """Cheap, time-insensitive tests first so short-circuiting skips scans."""
    return tuple(sorted(children, key=lambda c: (c.vd is not None, bool(c.deps.event_types))))


def and_nodes(children: list[CNode], text: str) -> CNode:
    kids = _ordered(children)
    evs = tuple(c.ev for c in kids)
    if len(evs) == 2:
        a, b = evs

        def ev(x: Any) -> bool:
            return a(x) and b(x)
    else:

        def ev(x: Any) -> bool:
            for f in evs:  # noqa: SIM110 (a plain loop is faster here)
                if not f(x):
                    return False
            return True

    def vd(ctx: Ctx) -> ValueDue:
        return combine_and(_pairs(kids, ctx))

    def trace(x: Any) -> Trace:
        ts = [c.trace(x) for c in children]
        return Trace(text, all(t.result for t in ts), children=ts)

    deps = merge_deps(c.deps for c in kids)
    return CNode(ev, vd if deps.time else None, trace, deps, text)


def or_nodes(children: list[CNode], text: str) -> CNode:
    kids = _ordered(children)
    evs = tuple(c.ev for c in kids)
    if len(evs) == 2:
        a, b = evs

        def ev(x: Any) -> bool:
            return a(x) or b(x)
    else:

        def ev(x: Any) -> bool:
            for f in evs:  # noqa: SIM110
                if f(x):
                    return True
            return False

    def vd(ctx: Ctx) -> ValueDue:
        return combine_or(_pairs(kids, ctx))

    def trace(x: Any) -> Trace:
        ts = [c.trace(x) for c in children]
        return Trace(text, any(t.result for t in ts), children=ts)

    deps = merge_deps(c.deps for c in kids)
    return CNode(ev, vd if deps.time else None, trace, deps, text)


@register(AllOf)
def _all_of(node: AllOf, env: Env) -> CNode:
    return and_nodes([compile_node(a, env) for a in node.args], "all of")


@register(AnyOf)
def _any_of(node: AnyOf, env: Env) -> CNode:
    return or_nodes([compile_node(a, env) for a in node.args], "any of")


@register(Negation)
def _negation(node: Negation, env: Env) -> CNode:
    child = compile_node(node.arg, env)
    f = child.ev

    def ev(x: Any) -> bool:
        return not f(x)

    cvd = child.vd

    def vd(ctx: Ctx) -> ValueDue:
        v, d = cvd(ctx)  # type: ignore[misc]
        return not v, d

    def trace(x: Any) -> Trace:
        t = child.trace(x)
        return Trace("not", not t.result, children=[t])

    return CNode(ev, vd if cvd is not None else None, trace, child.deps, "not " + child.text)
