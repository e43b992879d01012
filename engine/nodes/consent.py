"""``consented to [transactional] email [for "newsletter"]``: consent per
channel, purpose and topic, kept in the contact's consent map (engine/state.py).

Records are stored under ``"channel/purpose/topic"`` (``topic`` empty for the
whole channel) as ``[given, at_us]``; the first form's flags (``{"email":
true}``, bool values) share the map. Rules (docs/segments.md, "Consent"):

- channel-wide (no topic): the channel-wide record for that purpose; without
  one, a commercial condition reads the flag of the same name (so
  ``consent: {"email": true}`` inputs keep working);
- with a topic: that topic's record is given, and no channel-wide
  withdrawal of the same purpose is as new or newer (a flag set to false
  counts as a withdrawal of unknown time, so it always wins).
"""

from __future__ import annotations

from typing import Any

from engine.context import Ctx
from engine.deps import Deps
from engine.registry import CNode, Env, register
from engine.timeutil import from_us
from engine.trace import Trace
from models.conditions import Consented

__all__ = ["consent_key"]



def consent_key(channel: str, purpose: str, topic: str | None) -> str:
    return f"{channel}/{purpose}/{topic or ''}"


def _record(consent: dict[str, Any], key: str) -> tuple[bool, int] | None:
    rec = consent.get(key)
    if type(rec) is list and len(rec) == 2:
        return bool(rec[0]), rec[1]
    return None


@register(Consented)
def _consented(node: Consented, env: Env) -> CNode:
    env.require_contact("'consented to'")
    channel, purpose, topic = node.channel, node.purpose, node.topic
    wide_key = consent_key(channel, purpose, None)
    topic_key = consent_key(channel, purpose, topic) if topic is not None else None
    legacy = channel if purpose == "commercial" else None
    text = ("consented to " + ("" if purpose == "commercial" else purpose + " ") + channel
            + (f' for "{topic}"' if topic is not None else ""))

    def wide(consent: dict[str, Any]) -> tuple[bool, int | None] | None:
        rec = _record(consent, wide_key)
        if rec is not None:
            return rec
        if legacy is not None:
            flag = consent.get(legacy)
            if type(flag) is bool:
                return flag, None
        return None

    if topic_key is None:
        def ev(ctx: Ctx) -> bool:
            w = wide(ctx.consent)
            return w is not None and w[0]
    else:
        def ev(ctx: Ctx) -> bool:
            consent = ctx.consent
            rec = _record(consent, topic_key)
            if rec is None or not rec[0]:
                return False
            w = wide(consent)
            return w is None or w[0] or (w[1] is not None and w[1] < rec[1])

    def describe(rec: tuple[bool, int | None] | None, what: str) -> str:
        if rec is None:
            return f"{what}: no record"
        state = "given" if rec[0] else "withdrawn"
        when = from_us(rec[1]).isoformat() if rec[1] is not None else "flag, no time"
        return f"{what}: {state} ({when})"

    def trace(ctx: Ctx) -> Trace:
        consent = ctx.consent
        parts = []
        if topic_key is not None:
            parts.append(describe(_record(consent, topic_key), f'topic "{topic}"'))
        parts.append(describe(wide(consent), "whole channel"))
        return Trace(text, ev(ctx), seen="; ".join(parts))

    return CNode(ev, None, trace, Deps(consent=True), text)
