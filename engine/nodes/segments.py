"""``in segment "x"``: reads the contact's current membership of x (already
settled this step: the catalog evaluates segments in dependency order)."""

from __future__ import annotations

from engine.context import Ctx
from engine.deps import Deps
from engine.registry import CNode, Env, register
from engine.trace import Trace
from models.conditions import InSegment

__all__: list[str] = []


@register(InSegment)
def _in_segment(node: InSegment, env: Env) -> CNode:
    env.require_contact("'in segment'")
    sid = node.segment_id
    text = f'in segment "{sid}"'

    def ev(ctx: Ctx) -> bool:
        return bool(ctx.members.get(sid, 0) & 1)

    def trace(ctx: Ctx) -> Trace:
        return Trace(text, ev(ctx), seen=ev(ctx))

    return CNode(ev, None, trace, Deps(segments=frozenset([sid])), text)
