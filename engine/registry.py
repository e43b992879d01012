"""Compiler registry: one compiler per condition node type.

A compiler turns a node into a ``CNode``: closures that evaluate it, report
when its value could next flip (time-sensitive nodes only), and trace it for
``explain``. A node type without a compiler is a ``CompileError`` — never an
evaluator that silently answers false.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from engine.context import Ctx
from engine.deps import Deps
from engine.errors import CompileError
from engine.trace import Trace

__all__ = ["CNode", "Compiler", "Env", "ValueDue", "compile_node", "register"]

# (value now, next instant in us the value could flip, or None = never by itself)
ValueDue = tuple[bool, int | None]


@dataclass(frozen=True, slots=True)
class Env:
    """Compile-time environment: the segment's zone, and whether the node is
    evaluated on a contact (``Ctx``) or on one event's properties (``where``)."""

    segment_id: str
    tzname: str
    scope: Literal["contact", "event"] = "contact"
    max_distinct: int = 1000

    def event_scope(self) -> Env:
        return Env(self.segment_id, self.tzname, "event", self.max_distinct)

    def require_contact(self, what: str) -> None:
        if self.scope != "contact":
            raise CompileError(
                f"segment {self.segment_id!r}: {what} cannot be used inside a 'where' clause"
            )


@dataclass(frozen=True, slots=True)
class CNode:
    """A compiled node. ``ev`` takes a ``Ctx`` (contact scope) or an event's
    property dict (event scope). ``vd`` is set iff the node is time-sensitive."""

    ev: Callable[[Any], bool]
    vd: Callable[[Ctx], ValueDue] | None
    trace: Callable[[Any], Trace]
    deps: Deps
    text: str


Compiler = Callable[[Any, Env], CNode]
_REGISTRY: dict[type, Compiler] = {}
N = TypeVar("N")


def register(
    node_type: type[N],
) -> Callable[[Callable[[N, Env], CNode]], Callable[[N, Env], CNode]]:
    def deco(fn: Callable[[N, Env], CNode]) -> Callable[[N, Env], CNode]:
        if node_type in _REGISTRY:
            raise RuntimeError(f"two compilers for {node_type.__name__}")
        _REGISTRY[node_type] = fn
        return fn

    return deco


def compile_node(node: Any, env: Env) -> CNode:
    fn = _REGISTRY.get(type(node))
    if fn is None:
        raise CompileError(
            f"segment {env.segment_id!r}: no evaluator for node {type(node).__name__}"
        )
    return fn(node, env)
