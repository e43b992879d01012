"""Type-strict value tests built at compile time.

No cross-type coercion: a bool is not a number, ``"3"`` is not ``3``. A value
of the wrong type behaves like a missing one: every comparison on it is false
(``!=`` and ``not in`` included); only ``Negation`` turns that into true.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import orjson

from engine.errors import CompileError

__all__ = [
    "FLOAT_MAX",
    "INT_MAX",
    "INT_MIN",
    "NUM",
    "ValueTest",
    "add_number",
    "interval_test",
    "scalar_kind",
    "scalar_test",
    "value_key",
]

NUM = frozenset((int, float))
ValueTest = Callable[[Any], bool]

# Numbers (docs/engine.md, "Numbers"): inputs hold finite floats and integers
# in the signed 64-bit range (models/values.py refuses anything else).
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
FLOAT_MAX = sys.float_info.max


def add_number(total: int | float, v: int | float) -> int | float:
    """``total + v`` for sums that must stay storable: an integer sum is exact
    while it fits 64 bits and becomes a float beyond; a float sum past the
    largest finite double saturates at ±``FLOAT_MAX`` (never Infinity or NaN,
    which JSON cannot carry)."""
    s = total + v
    if type(s) is int:
        return s if INT_MIN <= s <= INT_MAX else float(s)
    if -FLOAT_MAX <= s <= FLOAT_MAX:
        return s
    if s != s:  # only reachable from a non-finite operand (not from inputs)
        return total
    return FLOAT_MAX if s > 0 else -FLOAT_MAX


def scalar_kind(v: Any) -> str | None:
    """'b' bool, 'n' number, 's' string, None for anything else."""
    t = type(v)
    if t is bool:
        return "b"
    if t is int or t is float:
        return "n"
    if t is str:
        return "s"
    return None


def value_key(v: Any) -> str | None:
    """A type-preserving hashable key for count-distinct / most-frequent:
    ``1`` and ``1.0`` are one value, ``1``, ``True`` and ``"1"`` three."""
    k = scalar_kind(v)
    if k is None:
        return None
    if k == "n" and type(v) is float and v.is_integer() and INT_MIN <= v < -INT_MIN:
        v = int(v)  # floats past 64 bits equal no input integer: stay floats
    return orjson.dumps(v).decode()


def _tagged(v: Any) -> tuple[str, Any]:
    k = scalar_kind(v)
    if k is None:
        raise CompileError(f"list items must be strings, numbers or booleans, got {v!r}")
    return (k, v)


def scalar_test(op: str, lit: Any) -> ValueTest:
    """Test for ``value OP lit`` where lit is a bool, number, string or list."""
    if op in ("in", "not in"):
        if not isinstance(lit, list):
            raise CompileError(f"'{op}' needs a list, got {lit!r}")
        items = frozenset(_tagged(x) for x in lit)
        kinds = frozenset(k for k, _ in items)
        if op == "in":
            return lambda v: (k := scalar_kind(v)) is not None and (k, v) in items
        return lambda v: (k := scalar_kind(v)) in kinds and (k, v) not in items
    if isinstance(lit, list):
        raise CompileError(f"operator '{op}' does not take a list")
    kind = scalar_kind(lit)
    if kind is None:
        raise CompileError(f"unsupported literal {lit!r}")
    if op == "contains":
        tag = (kind, lit)

        def contains(v: Any) -> bool:
            t = type(v)
            if t is list:
                return any((scalar_kind(x), x) == tag for x in v)
            return t is str and kind == "s" and lit in v

        return contains
    if op == "starts with":
        if kind != "s":
            raise CompileError(f"'starts with' needs a string, got {lit!r}")
        return lambda v: type(v) is str and v.startswith(lit)
    if kind == "b":
        if op == "=":
            return lambda v: type(v) is bool and v is lit
        if op == "!=":
            return lambda v: type(v) is bool and v is not lit
        raise CompileError(f"operator '{op}' is not defined on booleans")
    if kind == "n":
        return _num_test(op, lit)
    return _str_test(op, lit)


def _num_test(op: str, lit: Any) -> ValueTest:
    n = NUM
    if op == "=":
        return lambda v: type(v) in n and v == lit
    if op == "!=":
        return lambda v: type(v) in n and v != lit
    if op == "<":
        return lambda v: type(v) in n and v < lit
    if op == "<=":
        return lambda v: type(v) in n and v <= lit
    if op == ">":
        return lambda v: type(v) in n and v > lit
    if op == ">=":
        return lambda v: type(v) in n and v >= lit
    raise CompileError(f"unknown operator {op!r}")


def _str_test(op: str, lit: Any) -> ValueTest:
    if op == "=":
        return lambda v: type(v) is str and v == lit
    if op == "!=":
        return lambda v: type(v) is str and v != lit
    if op == "<":
        return lambda v: type(v) is str and v < lit
    if op == "<=":
        return lambda v: type(v) is str and v <= lit
    if op == ">":
        return lambda v: type(v) is str and v > lit
    if op == ">=":
        return lambda v: type(v) is str and v >= lit
    raise CompileError(f"unknown operator {op!r}")


def interval_test(op: str) -> Callable[[int, int, int, int], bool]:
    """Compare two time intervals ``[as, ae)`` OP ``[ls, le)``.

    An instant is ``[t, t+1)``, a calendar day ``[midnight, next midnight)``;
    so comparing a day with anything is at day granularity (``=`` means
    "falls on that day"), two instants compare exactly."""
    if op == "<":
        return lambda a_s, a_e, l_s, l_e: a_e <= l_s
    if op == "<=":
        return lambda a_s, a_e, l_s, l_e: a_s < l_e
    if op == ">":
        return lambda a_s, a_e, l_s, l_e: a_s >= l_e
    if op == ">=":
        return lambda a_s, a_e, l_s, l_e: a_e > l_s
    if op == "=":
        return lambda a_s, a_e, l_s, l_e: a_s < l_e and a_e > l_s
    if op == "!=":
        return lambda a_s, a_e, l_s, l_e: not (a_s < l_e and a_e > l_s)
    raise CompileError(f"operator '{op}' is not defined on dates")
