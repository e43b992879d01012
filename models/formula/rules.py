"""Semantic rules shared by the parser and the formatter.

The parser calls them with source positions at hand (so a violation becomes a
``FormulaError`` pointing at the offending token); the formatter calls them
on trees built in code or loaded from JSON (a violation becomes a plain
``ValueError``). One set of rules on both sides keeps ``parse(format(tree))``
total on every tree the formatter accepts.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from importlib import resources

from models.conditions import (
    BUCKETS,
    AllOf,
    AnniversaryWindow,
    AnyOf,
    Between,
    Comparison,
    DateLiteral,
    DateTimeLiteral,
    DateWithin,
    Exists,
    Negation,
    RelativeTime,
)
from models.event_types import EVENT_TYPE_NAME_MAX, is_event_type_name
from models.ids import is_valid_id

__all__ = [
    "KEYWORDS",
    "TIME_UNITS",
    "check_aggregate_value",
    "check_between",
    "check_bucket",
    "check_compare_value",
    "check_consent_channel",
    "check_consent_topic",
    "check_event_type",
    "check_range",
    "check_where",
    "is_bare_name",
    "unit_from_word",
]

# Every word the grammar reserves somewhere (formula.lark). A field segment
# equal to one of these is written in backticks by the formatter, so the
# canonical text never depends on where the contextual lexer would accept it.
# Read from the grammar itself so the two cannot drift apart.
KEYWORDS: frozenset[str] = frozenset(
    re.findall(
        r'"([a-z]+)"i',
        resources.files("models.formula").joinpath("formula.lark").read_text("utf-8"),
    )
)

TIME_UNITS: tuple[str, ...] = ("minutes", "hours", "days", "weeks")

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ORDERING_OPS = frozenset({"<", "<=", ">", ">="})
_LIST_OPS = frozenset({"in", "not in"})

# Nodes that make sense over an event's properties inside ``where``.
_WHERE_NODES = (Comparison, Exists, Between, DateWithin, AnniversaryWindow)


def is_bare_name(segment: str) -> bool:
    """Whether a field segment / event type can be written without backticks."""
    return bool(_IDENT.match(segment)) and segment.lower() not in KEYWORDS


def unit_from_word(word: str) -> str | None:
    """``day``/``days``/``DAYS`` → ``"days"``; ``None`` for an unknown unit."""
    w = word.lower()
    plural = w if w.endswith("s") else w + "s"
    return plural if plural in TIME_UNITS else None


def _is_scalar(value: object) -> bool:
    return isinstance(
        value, bool | int | float | str | DateLiteral | DateTimeLiteral | RelativeTime
    )


def _is_plain(value: object) -> bool:
    """A JSON scalar: string, number or boolean (not a date or relative time)."""
    return isinstance(value, bool | int | float | str)


def _kind(value: object) -> str:
    """Comparable families: booleans, numbers, strings, points in time."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "time"


def check_compare_value(op: str, value: object) -> str | None:
    """The value an operator needs (the evaluator refuses the rest):
    ``in``/``not in`` a non-empty list of strings, numbers or booleans;
    ``starts with`` a string; ``contains`` a string, number or boolean;
    ordering anything but a boolean; ``=``/``!=`` any single value."""
    if op in _LIST_OPS:
        if not isinstance(value, list):
            return f'"{op}" needs a list in parentheses, e.g. ("a", "b")'
        if not value:
            return f'"{op}" needs at least one value in its list'
        for item in value:
            if not _is_plain(item):
                return f'"{op}" lists hold strings, numbers or booleans, not dates or times'
        return None
    if isinstance(value, list):
        return f'"{op}" compares with one value, not a list'
    if not _is_scalar(value):
        return f"unsupported value {value!r}"
    if op == "starts with" and not isinstance(value, str):
        return '"starts with" needs a string'
    if op == "contains" and not _is_plain(value):
        return '"contains" needs a string, number or boolean'
    if op in _ORDERING_OPS and isinstance(value, bool):
        return f'"{op}" cannot order booleans; use = or !='
    return None


def check_between(low: object, high: object) -> str | None:
    """Both bounds of one family (numbers, strings, or points in time —
    dates, date-times and relative times mix); booleans have no order."""
    if isinstance(low, list) or isinstance(high, list):
        return '"between" takes single values, not lists'
    for bound in (low, high):
        if isinstance(bound, bool):
            return '"between" cannot order booleans'
    if _kind(low) != _kind(high):
        return f'"between" needs bounds of one type, not a {_kind(low)} and a {_kind(high)}'
    return None


_BUCKET_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})


def check_bucket(seed: object, op: str, value: object) -> str | None:
    """``bucket("seed") OP N``: a seed written like an id (so every system
    that reproduces the hash reads the same bytes), one of the six
    comparisons, a whole number 0-10000."""
    if not isinstance(seed, str) or not is_valid_id(seed):
        return ("a bucket seed is 1-200 letters, digits and _ . : @ + -, starting with a "
                'letter or digit, e.g. bucket("spring-test")')
    if op not in _BUCKET_OPS:
        return f'a bucket compares with =, !=, <, <=, > or >= and a number, not "{op}"'
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= BUCKETS:
        return f"a bucket is compared with a whole number from 0 to {BUCKETS}"
    return None


_CHANNEL = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
CONSENT_PURPOSES = ("commercial", "transactional")


def check_consent_channel(channel: object) -> str | None:
    """Channels are lower-case names (email, sms, push, in_app…), as in
    ``ContactUpsert.consents``."""
    if isinstance(channel, str) and _CHANNEL.match(channel):
        return None
    return (f"{channel!r} is not a consent channel: lower-case letters, digits and _, "
            "starting with a letter, at most 32 (email, sms, push…)")


def check_consent_topic(topic: object) -> str | None:
    if topic is None or is_valid_id(topic):
        return None
    return ("a consent topic is 1-200 letters, digits and _ . : @ + -, starting with a "
            'letter or digit, e.g. "newsletter"')


def check_aggregate_value(value: object) -> str | None:
    """An aggregate is a number, string or date, never "now"-relative."""
    if isinstance(value, RelativeTime):
        return "an aggregate cannot be compared with a relative time; use a date"
    return None


def check_event_type(event_type: str) -> str | None:
    """Event types are data (models/event_types.py): a formula checks only
    the name's form. Whether the type is declared is checked where a
    definition is written (the API, with the declarations at hand: an
    undeclared type is refused there with its line and column); a definition
    produced straight to the topic that names an undeclared type is applied
    and matches nothing until the type is declared."""
    if is_event_type_name(event_type):
        return None
    shown = event_type if len(event_type) <= 80 else event_type[:80] + "…"
    return (f'"{shown}" is not an event type name (letters, digits and _, starting with a '
            f"letter or _; at most {EVENT_TYPE_NAME_MAX})")


def check_range(
    start: DateLiteral | DateTimeLiteral, end: DateLiteral | DateTimeLiteral
) -> str | None:
    """A reversed absolute range is always a typo (it matches nothing)."""
    a: date | datetime = start.date if isinstance(start, DateLiteral) else start.datetime
    b: date | datetime = end.date if isinstance(end, DateLiteral) else end.datetime
    if type(a) is type(b) and b < a:
        return "the range ends before it starts"
    return None


def check_where(cond: object) -> str | None:
    """``where`` filters on event properties: only comparisons, exists,
    between and date checks (combined with and/or/not) make sense there."""
    if isinstance(cond, AllOf | AnyOf):
        for arg in cond.args:
            problem = check_where(arg)
            if problem:
                return problem
        return None
    if isinstance(cond, Negation):
        return check_where(cond.arg)
    if isinstance(cond, _WHERE_NODES):
        return None
    kind = getattr(cond, "node", type(cond).__name__)
    return (
        f'a "where" clause filters on event properties; "{kind}" conditions '
        "are not allowed inside it"
    )
