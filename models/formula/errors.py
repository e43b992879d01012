"""The one error type of the formula language.

Both syntax errors (from lark) and semantic errors (bad unit, negative count,
``in`` with a single value…) are ``FormulaError``: a ``ValueError`` carrying
the 1-based line and column, so pydantic validators surface it unchanged and
an editor can put a squiggle at the right spot.
"""

from __future__ import annotations

__all__ = ["FormulaError"]


class FormulaError(ValueError):
    """A formula that cannot be turned into a condition tree.

    ``str(err)`` is ``"line L, column C: <problem>"``; ``problem`` is the bare
    message, ``expected`` lists what would have been accepted there (human
    phrases, possibly empty).
    """

    def __init__(
        self,
        problem: str,
        line: int,
        column: int,
        expected: list[str] | None = None,
    ) -> None:
        self.problem = problem
        self.line = line
        self.column = column
        self.expected: list[str] = list(expected or [])
        super().__init__(f"line {line}, column {column}: {problem}")

    @property
    def message(self) -> str:
        """The full human message (same as ``str(err)``)."""
        return str(self)

    def __reduce__(self) -> tuple[type[FormulaError], tuple[str, int, int, list[str]]]:
        # Keep the error picklable (multiprocessing, Faust) with all its fields.
        return (type(self), (self.problem, self.line, self.column, self.expected))
