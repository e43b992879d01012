"""Engine errors: raised when a definition is put into the catalog, never
while evaluating (an evaluator that cannot run must fail loudly at compile
time instead of silently dropping people from segments)."""

from __future__ import annotations

__all__ = ["CompileError", "CycleError"]


class CompileError(ValueError):
    """A condition tree the engine cannot evaluate (unknown node, an operator
    that makes no sense for the literal's type, a time-relative test inside a
    ``where`` clause…). The message names the segment and the node."""


class CycleError(ValueError):
    """Segment references form a cycle; ``cycle`` lists it, e.g. a -> b -> a."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("segment reference cycle: " + " -> ".join(cycle))
