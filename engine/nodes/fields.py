"""Field access compiled once: ``city``, ``address.city``, ``account.industry``,
``consent.email``; inside ``where`` the path names an event property."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.deps import Deps
from engine.registry import Env

__all__ = ["getter", "lit_text", "simple_source"]

Getter = Callable[[Any], Any]


def _walk(rest: tuple[str, ...]) -> Callable[[Any], Any]:
    def walk(v: Any) -> Any:
        for p in rest:
            if type(v) is not dict:
                return None
            v = v.get(p)
        return v

    return walk


def simple_source(field: str, env: Env) -> tuple[str, str] | None:
    """(source, key) when the path is one key deep in its source, else None."""
    parts = field.split(".")
    if env.scope == "event":
        return ("event", parts[0]) if len(parts) == 1 else None
    if len(parts) == 1:
        return "attrs", parts[0]
    if len(parts) == 2 and parts[0] in ("account", "consent"):
        return parts[0], parts[1]
    return None


def getter(field: str, env: Env) -> tuple[Getter, Deps]:
    """(accessor, dependencies). A missing path yields None (= missing)."""
    parts = tuple(field.split("."))
    head, rest = parts[0], parts[1:]
    if env.scope == "event":
        deps = Deps(fields=frozenset([head]))
        if not rest:
            return (lambda p: p.get(head)), deps
        walk = _walk(rest)
        return (lambda p: walk(p.get(head))), deps
    if head == "account" and rest:
        key, rest2 = rest[0], rest[1:]
        deps = Deps(account=True, account_fields=frozenset([key]))
        if not rest2:
            return (lambda c: c.account.get(key)), deps
        walk = _walk(rest2)
        return (lambda c: walk(c.account.get(key))), deps
    if head == "consent" and rest:
        key, rest2 = rest[0], rest[1:]
        deps = Deps(consent=True)
        if not rest2:
            return (lambda c: c.consent.get(key)), deps
        walk = _walk(rest2)
        return (lambda c: walk(c.consent.get(key))), deps
    deps = Deps(fields=frozenset([head]))
    if not rest:
        return (lambda c: c.attrs.get(head)), deps
    walk = _walk(rest)
    return (lambda c: walk(c.attrs.get(head))), deps


def lit_text(v: Any) -> str:
    from models.conditions import DateLiteral, DateTimeLiteral, RelativeTime

    if isinstance(v, list):
        return "[" + ", ".join(lit_text(x) for x in v) + "]"
    if isinstance(v, DateLiteral):
        return v.date.isoformat()
    if isinstance(v, DateTimeLiteral):
        return v.datetime.isoformat()
    if isinstance(v, RelativeTime):
        return f"{v.amount} {v.unit} {'ago' if v.direction == 'ago' else 'from now'}"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace('"', '\\"') + '"'
    return repr(v)
