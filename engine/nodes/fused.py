"""Fused leaf closures for the hottest shapes: ``key OP literal`` on a
top-level attribute (or event property) with a number or string literal.

One Python call per leaf instead of three (getter, test, wrapper). The
closures are built from fixed templates whose every token comes from the
whitelists below; user data (the key and the literal) is only ever bound as
a closure variable, never spliced into source.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from engine.values import NUM, scalar_kind

__all__ = ["fused_compare", "fused_exists"]

_OPS = {"=": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_SOURCES = {"attrs": "x.attrs", "account": "x.account", "consent": "x.consent", "event": "x"}
_CHECKS = {"n": "type(v) in NUM", "s": "type(v) is str"}


@cache
def _factory(source: str, check: str, op: str) -> Callable[..., Callable[[Any], bool]]:
    src = (
        "def make(k, lit, NUM):\n"
        "    def f(x):\n"
        f"        v = {_SOURCES[source]}.get(k)\n"
        f"        return {_CHECKS[check]} and v {_OPS[op]} lit\n"
        "    return f\n"
    )
    ns: dict[str, Any] = {}
    exec(compile(src, f"<fused {source} {check} {op}>", "exec"), ns)  # fixed template
    return ns["make"]  # type: ignore[no-any-return]


def fused_compare(source: str, key: str, op: str, lit: Any) -> Callable[[Any], bool] | None:
    """A single-call closure for ``source[key] OP lit``, or None if the shape
    is not one of the fused ones."""
    kind = scalar_kind(lit)
    if op not in _OPS or kind not in _CHECKS or source not in _SOURCES:
        return None
    return _factory(source, kind, op)(key, lit, NUM)


def fused_exists(source: str, key: str, negated: bool) -> Callable[[Any], bool]:
    if source == "attrs":
        if negated:
            return lambda x: x.attrs.get(key) is None
        return lambda x: x.attrs.get(key) is not None
    if source == "event":
        if negated:
            return lambda x: x.get(key) is None
        return lambda x: x.get(key) is not None
    if source == "account":
        if negated:
            return lambda x: x.account.get(key) is None
        return lambda x: x.account.get(key) is not None
    if negated:
        return lambda x: x.consent.get(key) is None
    return lambda x: x.consent.get(key) is not None
