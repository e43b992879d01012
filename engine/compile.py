"""Compile a segment definition once into closures plus its dependencies."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import engine.nodes  # noqa: F401  (registers every node compiler)
from engine.context import Ctx
from engine.deps import Deps
from engine.errors import CompileError
from engine.limits import Limits
from engine.registry import CNode, Env, ValueDue, compile_node
from engine.trace import Trace
from models.segments import SegmentDefinition

__all__ = ["CompiledSegment", "SegmentEval", "compile_segment"]

_NEVER: ValueDue = (False, None)
_ALWAYS: ValueDue = (True, None)

# (ctx, contact_id, static edits) -> (member, due)
SegmentEval = Callable[[Ctx, str, Mapping[str, bool]], ValueDue]


@dataclass(frozen=True, slots=True, eq=False)
class CompiledSegment:
    """``evaluate`` decides membership: exclude wins; an explicit add (static
    edit) or the include list forces membership; otherwise the condition
    decides (a static segment has none)."""

    defn: SegmentDefinition
    cond: CNode | None
    include: frozenset[str]
    exclude: frozenset[str]
    deps: Deps
    evaluate: SegmentEval
    id: str
    version: int

    def trace(self, ctx: Ctx, contact_id: str, static: Mapping[str, bool]) -> Trace:
        member, _ = self.evaluate(ctx, contact_id, static)
        kids: list[Trace] = []
        if contact_id in self.exclude:
            kids.append(Trace("contact is in the exclude list (wins)", True))
        forced = static.get(self.id)
        if forced is not None:
            kids.append(Trace(f"static edit: {'added' if forced else 'removed'}", forced))
        elif contact_id in self.include:
            kids.append(Trace("contact is in the include list", True))
        if self.cond is not None:
            kids.append(self.cond.trace(ctx))
        d = self.defn
        return Trace(f'segment "{d.id}" v{d.version} ({d.kind})', member, children=kids)


def _segment_eval(sid: str, cond: CNode | None, include: frozenset[str],
                  exclude: frozenset[str]) -> SegmentEval:
    """The membership closure, specialised to what the definition uses."""
    if cond is None:
        def static_only(ctx: Ctx, cid: str, static: Mapping[str, bool]) -> ValueDue:
            if cid in exclude:
                return _NEVER
            forced = static.get(sid)
            if forced is None:
                forced = cid in include
            return _ALWAYS if forced else _NEVER

        return static_only
    vd, ev = cond.vd, cond.ev
    if not include and not exclude:
        if vd is not None:
            def plain_vd(ctx: Ctx, cid: str, static: Mapping[str, bool]) -> ValueDue:
                if static and static.get(sid):
                    return _ALWAYS
                return vd(ctx)

            return plain_vd

        def plain(ctx: Ctx, cid: str, static: Mapping[str, bool]) -> ValueDue:
            if static and static.get(sid):
                return _ALWAYS
            return _ALWAYS if ev(ctx) else _NEVER

        return plain

    def general(ctx: Ctx, cid: str, static: Mapping[str, bool]) -> ValueDue:
        if cid in exclude:
            return _NEVER
        forced = static.get(sid)
        if forced is None:
            forced = cid in include
        if forced:
            return _ALWAYS
        if vd is not None:
            return vd(ctx)
        return _ALWAYS if ev(ctx) else _NEVER

    return general


def compile_segment(defn: SegmentDefinition, limits: Limits | None = None) -> CompiledSegment:
    cond: CNode | None = None
    if defn.condition is not None and defn.kind != "static":
        max_distinct = (limits or Limits()).max_distinct_values
        cond = compile_node(defn.condition, Env(defn.id, defn.timezone, "contact", max_distinct))
    deps = cond.deps if cond is not None else Deps()
    _check_retention(defn.id, deps, limits)
    include, exclude = frozenset(defn.include), frozenset(defn.exclude)
    return CompiledSegment(defn, cond, include, exclude, deps,
                           _segment_eval(defn.id, cond, include, exclude), defn.id, defn.version)


_DAY_US = 86_400_000_000
_EVER_US = 1 << 62  # engine.nodes.behaviour's "keep everything" lookback


def _check_retention(segment_id: str, deps: Deps, limits: Limits | None) -> None:
    retention = limits.history_retention_us if limits is not None else None
    if retention is None:
        return
    for event_type, need in deps.history:
        if retention < need.lookback_us < _EVER_US:
            raise CompileError(
                f"segment {segment_id!r}: a window of {need.lookback_us / _DAY_US:g} days "
                f"over {event_type!r} reaches further back than the interaction history "
                f"is kept ({retention / _DAY_US:g} days, SEGMENTFLOW_HISTORY_RETENTION_DAYS); "
                "use a shorter window or raise the retention")
