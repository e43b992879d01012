"""Explain traces: what each condition saw, against what, and its result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Trace"]


@dataclass(slots=True)
class Trace:
    text: str
    result: bool
    seen: Any = None
    threshold: Any = None
    children: list[Trace] = field(default_factory=list)

    def lines(self, indent: int = 0) -> list[str]:
        mark = "TRUE " if self.result else "false"
        extra = []
        if self.seen is not None:
            extra.append(f"seen={self.seen!r}")
        if self.threshold is not None:
            extra.append(f"threshold={self.threshold!r}")
        tail = f"  ({', '.join(extra)})" if extra else ""
        out = [f"{'  ' * indent}[{mark}] {self.text}{tail}"]
        for child in self.children:
            out.extend(child.lines(indent + 1))
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())
