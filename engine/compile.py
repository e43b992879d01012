"""Compile a segment definition once into closures plus its dependencies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import engine.nodes  # noqa: F401  (registers every node compiler)
from engine.context import Ctx
from engine.deps import Deps
from engine.limits import Limits
from engine.registry import CNode, Env, ValueDue, compile_node
from engine.trace import Trace
from models.segments import SegmentDefinition

__all__ = ["CompiledSegment", "compile_segment"]

_NEVER: ValueDue = (False, None)
_ALWAYS: ValueDue = (True, None)


@dataclass(frozen=True, slots=True, eq=False)
class CompiledSegment:
    defn: SegmentDefinition
    cond: CNode | None
    include: frozenset[str]
    exclude: frozenset[str]
    deps: Deps

    @property
    def id(self) -> str:
        return self.defn.id

    def evaluate(self, ctx: Ctx, contact_id: str, static: Mapping[str, bool]) -> ValueDue:
        """(member, due). Exclude wins; an explicit add/include forces
        membership; otherwise the condition decides (static kind: never)."""
        if contact_id in self.exclude:
            return _NEVER
        forced = static.get(self.defn.id)
        if forced is None:
            forced = contact_id in self.include
        if forced:
            return _ALWAYS
        c = self.cond
        if c is None:
            return _NEVER
        if c.vd is not None:
            return c.vd(ctx)
        return c.ev(ctx), None

    def trace(self, ctx: Ctx, contact_id: str, static: Mapping[str, bool]) -> Trace:
        member, _ = self.evaluate(ctx, contact_id, static)
        kids: list[Trace] = []
        if contact_id in self.exclude:
            kids.append(Trace("contact is in the exclude list (wins)", True))
        forced = static.get(self.defn.id)
        if forced is not None:
            kids.append(Trace(f"static edit: {'added' if forced else 'removed'}", forced))
        elif contact_id in self.include:
            kids.append(Trace("contact is in the include list", True))
        if self.cond is not None:
            kids.append(self.cond.trace(ctx))
        return Trace(f'segment "{self.defn.id}" v{self.defn.version} ({self.defn.kind})',
                     member, children=kids)


def compile_segment(defn: SegmentDefinition, limits: Limits | None = None) -> CompiledSegment:
    cond: CNode | None = None
    if defn.condition is not None and defn.kind != "static":
        max_distinct = (limits or Limits()).max_distinct_values
        cond = compile_node(defn.condition, Env(defn.id, defn.timezone, "contact", max_distinct))
    deps = cond.deps if cond is not None else Deps()
    return CompiledSegment(defn, cond, frozenset(defn.include), frozenset(defn.exclude), deps)


