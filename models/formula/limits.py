"""Size and nesting limits of a segment formula, checked wherever a
definition is accepted (``parse_formula`` and ``SegmentDefinition``).

- ``MAX_FORMULA_LENGTH`` characters of formula text. Parsing costs about
  15 µs per character, and every worker validates each stored definition
  again when it applies it (on its event loop), so the limit bounds the
  work one definition can cause (8 KiB: about 0.1 s per validation); real
  formulas are a few hundred characters.
- ``MAX_NESTING`` levels of conditions (``not``, ``and``/``or`` groups,
  ``where`` clauses: each counts one level). Deeper trees cannot be stored
  and loaded back safely (JSON depth limits of the decoders, recursion in the
  formatter and the engine); a handful of levels is what people write.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_FORMULA_LENGTH", "MAX_NESTING", "condition_depth", "nesting_problem"]

MAX_FORMULA_LENGTH = 8_192
MAX_NESTING = 32


def condition_depth(cond: Any) -> int:
    """Levels of conditions in a tree (a single comparison is 1), computed
    iteratively so any depth is measured without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(cond, 1)]
    while stack:
        node, depth = stack.pop()
        if node is None:
            continue
        deepest = max(deepest, depth)
        # The fields, read from __dict__: getattr of a field a node lacks goes
        # through pydantic's __getattr__ and costs ~10x more (this runs on
        # every definition the evaluators apply).
        fields = getattr(node, "__dict__", None) or {}
        for name in ("arg", "where"):
            child = fields.get(name)
            if child is not None:
                stack.append((child, depth + 1))
        for child in fields.get("args") or ():
            stack.append((child, depth + 1))
    return deepest


def nesting_problem(cond: Any) -> str | None:
    """The error message when ``cond`` nests deeper than ``MAX_NESTING``."""
    depth = condition_depth(cond)
    if depth > MAX_NESTING:
        return (f"the condition nests {depth} levels deep; at most {MAX_NESTING} are "
                "allowed (MAX_NESTING)")
    return None
