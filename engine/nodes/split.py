"""``bucket("seed") < 1000``: the contact's stable hash bucket (splits,
holdouts; engine/buckets.py). It depends on the contact id alone, so it
never changes for a contact: evaluated when the contact is created and when
a segment using it is (re)defined, never by time or other inputs."""

from __future__ import annotations

import operator
from collections.abc import Callable

from engine.buckets import bucket
from engine.context import Ctx
from engine.deps import Deps
from engine.registry import CNode, Env, register
from engine.trace import Trace
from models.conditions import Bucket

__all__: list[str] = []

_OPS: dict[str, Callable[[int, int], bool]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


@register(Bucket)
def _bucket(node: Bucket, env: Env) -> CNode:
    env.require_contact("'bucket'")
    seed, value, test = node.seed, node.value, _OPS[node.op]
    text = f'bucket("{seed}") {node.op} {value}'

    def ev(ctx: Ctx) -> bool:
        cid = ctx.contact_id
        return cid is not None and test(bucket(seed, cid), value)

    def trace(ctx: Ctx) -> Trace:
        cid = ctx.contact_id
        seen = bucket(seed, cid) if cid is not None else None
        return Trace(text, ev(ctx), seen=seen, threshold=value)

    return CNode(ev, None, trace, Deps(contact_id=True), text)
