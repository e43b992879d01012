"""JSON values upstream may put in attributes and event properties: one
definition of a valid value, enforced at ingest.

Whatever ingest accepts must be evaluable by the engine, storable in a
contact's state (orjson) and encodable on every topic. So a value is JSON
with these limits (a value outside them is dead-lettered with its path):

- numbers are finite: ``NaN``, ``Infinity`` and anything that overflows a
  double (``1e400``) are refused (pydantic's JSON parser accepts them; orjson
  would write them as ``null``);
- integers lie in the signed 64-bit range ``[-2**63, 2**63 - 1]``
  (``INT_MIN`` … ``INT_MAX``; orjson, and most consumers, cannot carry more);
  a float may be any finite double. Aggregates over such values stay usable:
  see docs/engine.md ("Numbers");
- strings (values and object keys) hold at most ``MAX_STRING_LENGTH``
  characters, object keys at most ``MAX_KEY_LENGTH``;
- lists and objects hold at most ``MAX_ITEMS`` entries each and nest at
  most ``MAX_DEPTH`` levels (an attribute whose value is a scalar has depth 0,
  ``{"a": [1]}`` has depth 2).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_KEY_LENGTH",
    "MAX_STRING_LENGTH",
    "JsonObject",
    "JsonValue",
    "value_problem",
]

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
MAX_STRING_LENGTH = 65_536
MAX_KEY_LENGTH = 256
MAX_ITEMS = 10_000
MAX_DEPTH = 32


def _at(path: str) -> str:
    if len(path) > 120:
        path = path[:120] + "…"
    return f" at {path}" if path else ""


def value_problem(value: Any, path: str = "", depth: int = 0) -> str | None:
    """What is wrong with ``value`` (naming where, relative to it), or None."""
    t = type(value)
    if t is str:
        if len(value) > MAX_STRING_LENGTH:
            return (f"string of {len(value)} characters{_at(path)} exceeds "
                    f"{MAX_STRING_LENGTH}")
        return None
    if t is bool or value is None:
        return None
    if t is int:
        if not INT_MIN <= value <= INT_MAX:
            return (f"integer{_at(path)} is outside the 64-bit range "
                    f"[{INT_MIN}, {INT_MAX}]")
        return None
    if t is float:
        if not math.isfinite(value):
            text = ("NaN" if value != value else
                    "Infinity (or a number beyond ±1.8e308)" if value > 0 else
                    "-Infinity (or a number beyond ±1.8e308)")
            return f"{text}{_at(path)}: numbers must be finite"
        return None
    if t is list or t is dict:
        if depth >= MAX_DEPTH:
            return f"nesting deeper than {MAX_DEPTH} levels{_at(path)}"
        if len(value) > MAX_ITEMS:
            kind = "list" if t is list else "object"
            return f"{kind} of {len(value)} entries{_at(path)} exceeds {MAX_ITEMS}"
        if t is list:
            for i, item in enumerate(value):
                problem = value_problem(item, f"{path}[{i}]", depth + 1)
                if problem is not None:
                    return problem
            return None
        for key, item in value.items():
            if type(key) is not str:  # not reachable from JSON; Python callers
                return f"object key {key!r}{_at(path)} is not a string"
            inner = f"{path}.{key}" if path else key
            if len(key) > MAX_KEY_LENGTH:
                return f"object key of {len(key)} characters{_at(path)} exceeds {MAX_KEY_LENGTH}"
            problem = value_problem(item, inner, depth + 1)
            if problem is not None:
                return problem
        return None
    return f"{t.__name__}{_at(path)} is not a JSON value"


def _check(value: Any) -> Any:
    problem = value_problem(value)
    if problem is not None:
        raise PydanticCustomError("json_value", problem)
    return value


_VALUE_SCHEMA: dict[str, Any] = {
    "description": (
        f"Any JSON value: finite numbers, integers within [{INT_MIN}, {INT_MAX}], "
        f"strings of at most {MAX_STRING_LENGTH} characters, object keys of at most "
        f"{MAX_KEY_LENGTH}, at most {MAX_ITEMS} entries per list or object, "
        f"nested at most {MAX_DEPTH} levels"
    ),
    "anyOf": [
        {"type": "boolean"},
        {"type": "integer", "minimum": INT_MIN, "maximum": INT_MAX},
        {"type": "number"},
        {"type": "string", "maxLength": MAX_STRING_LENGTH},
        {"type": "array", "maxItems": MAX_ITEMS},
        {"type": "object", "maxProperties": MAX_ITEMS},
        {"type": "null"},
    ],
}

# One attribute / property value.
JsonValue = Annotated[Any, AfterValidator(_check), WithJsonSchema(_VALUE_SCHEMA)]

# ``attributes`` / ``properties``: names to values.
JsonObject = Annotated[
    dict[Annotated[str, Field(max_length=MAX_KEY_LENGTH)], JsonValue],
    Field(max_length=MAX_ITEMS),
]
