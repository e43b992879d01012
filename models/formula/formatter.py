"""Condition tree → canonical formula text.

Canonical form (docs/formula.md): lower-case keywords, single spaces, the
fewest parentheses precedence allows (not > and > or) plus the ones that
keep a nested same-operator group nested, the window of ``performed`` and
aggregates always written (``ever`` included), the count written unless it
is the default ``at least 1``. ``parse_formula(format_condition(t)) == t``
for every tree this accepts; trees the language cannot express (a list
after ``=``, a naive date-time, a dot inside a field segment…) raise
``ValueError``.
"""

from __future__ import annotations

import json
import math
from datetime import datetime

from models.conditions import (
    AggregateCondition,
    AllOf,
    AnniversaryWindow,
    AnyOf,
    Between,
    Bucket,
    Comparison,
    Condition,
    Consented,
    DateLiteral,
    DateTimeLiteral,
    DateWithin,
    EverWindow,
    Exists,
    InSegment,
    LastPerformed,
    Negation,
    Performed,
    RangeWindow,
    RelativeTime,
    RelativeWindow,
)
from models.formula import rules

__all__ = ["format_condition", "format_value"]


def format_condition(cond: Condition) -> str:
    """The canonical text of a condition tree."""
    return _fmt(cond)


def _fmt(cond: object) -> str:
    if isinstance(cond, AnyOf):
        return " or ".join(_wrap(a, AnyOf) for a in _args(cond.args))
    if isinstance(cond, AllOf):
        return " and ".join(_wrap(a, AllOf | AnyOf) for a in _args(cond.args))
    if isinstance(cond, Negation):
        return "not " + _wrap(cond.arg, AllOf | AnyOf)
    if isinstance(cond, Comparison):
        return f"{_field(cond.field)} {_op_value(cond.op, cond.value)}"
    if isinstance(cond, Exists):
        return f"{_field(cond.field)} {'not exists' if cond.negated else 'exists'}"
    if isinstance(cond, Between):
        problem = rules.check_between(cond.low, cond.high)
        if problem:
            raise ValueError(problem)
        low, high = _scalar("between", cond.low), _scalar("between", cond.high)
        return f"{_field(cond.field)} between {low} and {high}"
    if isinstance(cond, AnniversaryWindow):
        return f"{_field(cond.field)} in {cond.direction} {_amount(cond.days, 'days')}"
    if isinstance(cond, DateWithin):
        return f"{_field(cond.field)} {_relative_window(cond.window)}"
    if isinstance(cond, InSegment):
        if not cond.segment_id:
            raise ValueError("in segment: the segment id is empty")
        return f"in segment {_string(cond.segment_id)}"
    if isinstance(cond, Bucket):
        problem = rules.check_bucket(cond.seed, cond.op, cond.value)
        if problem:
            raise ValueError(problem)
        return f"bucket({_string(cond.seed)}) {cond.op} {cond.value}"
    if isinstance(cond, Consented):
        problem = rules.check_consent_channel(cond.channel) or rules.check_consent_topic(
            cond.topic)
        if problem:
            raise ValueError(problem)
        parts = ["consented to"]
        if cond.purpose != "commercial":
            parts.append(cond.purpose)
        # a channel named like a purpose word needs backticks there
        channel = cond.channel
        parts.append(f"`{channel}`" if channel in rules.CONSENT_PURPOSES else _name(channel))
        if cond.topic is not None:
            parts += ["for", _string(cond.topic)]
        return " ".join(parts)
    if isinstance(cond, Performed):
        parts = ["performed", _event(cond.event_type), *_where(cond.where)]
        if (cond.count_op, cond.count) != ("at least", 1):
            parts.append(f"{cond.count_op} {cond.count} {'time' if cond.count == 1 else 'times'}")
        parts.append(_window(cond.window))
        return " ".join(parts)
    if isinstance(cond, LastPerformed):
        at = _value(cond.at)
        parts = ["last performed", _event(cond.event_type), *_where(cond.where), cond.op, at]
        return " ".join(parts)
    if isinstance(cond, AggregateCondition):
        problem = rules.check_aggregate_value(cond.value)
        if problem:
            raise ValueError(problem)
        parts = [
            cond.func,
            _field(cond.property),
            "of",
            _event(cond.event_type),
            *_where(cond.where),
            _window(cond.window),
            _op_value(cond.op, cond.value),
        ]
        return " ".join(parts)
    raise ValueError(f"not a condition node: {cond!r}")


def _args(args: list[Condition]) -> list[Condition]:
    if len(args) < 2:
        raise ValueError("and/or need at least two conditions")
    return args


def _wrap(cond: object, parenthesised: type | tuple[type, ...] | object) -> str:
    text = _fmt(cond)
    return f"({text})" if isinstance(cond, parenthesised) else text  # type: ignore[arg-type]


def _where(where: Condition | None) -> list[str]:
    if where is None:
        return []
    problem = rules.check_where(where)
    if problem:
        raise ValueError(problem)
    return ["where", _wrap(where, AllOf | AnyOf)]


def _event(event_type: str) -> str:
    problem = rules.check_event_type(event_type)
    if problem:
        raise ValueError(problem)
    return _name(event_type)


def _name(segment: str) -> str:
    if rules.is_bare_name(segment):
        return segment
    if not segment or "." in segment or "\n" in segment:
        raise ValueError(f"name {segment!r} cannot be written in a formula")
    return "`" + segment.replace("`", "``") + "`"


def _field(path: str) -> str:
    return ".".join(_name(segment) for segment in path.split("."))


def _op_value(op: str, value: object) -> str:
    problem = rules.check_compare_value(op, value)
    if problem:
        raise ValueError(problem)
    if isinstance(value, list):
        return f"{op} (" + ", ".join(_value(v) for v in value) + ")"
    return f"{op} {_value(value)}"


def _scalar(op: str, value: object) -> str:
    if isinstance(value, list):
        raise ValueError(f'"{op}" takes single values, not a list')
    return _value(value)


def _amount(amount: int, unit: str) -> str:
    """``1 day``, ``3 days``: singular only for exactly one."""
    return f"{amount} {unit[:-1] if amount == 1 else unit}"


def _relative_window(window: RelativeWindow) -> str:
    return f"within {window.direction} {_amount(window.amount, window.unit)}"


def _window(window: object) -> str:
    if isinstance(window, EverWindow):
        return "ever"
    if isinstance(window, RelativeWindow):
        return _relative_window(window)
    if isinstance(window, RangeWindow):
        problem = rules.check_range(window.start, window.end)
        if problem:
            raise ValueError(problem)
        return f"between {_value(window.start)} and {_value(window.end)}"
    raise ValueError(f"not a window: {window!r}")


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def format_value(value: object) -> str:
    """The formula text of one literal (also used in error messages)."""
    return _value(value)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} cannot be written in a formula")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, DateLiteral):
        return value.date.isoformat()
    if isinstance(value, DateTimeLiteral):
        return _datetime(value.datetime)
    if isinstance(value, RelativeTime):
        suffix = "ago" if value.direction == "ago" else "from now"
        return f"{_amount(value.amount, value.unit)} {suffix}"
    raise ValueError(f"unsupported value {value!r}")


def _datetime(value: datetime) -> str:
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"date-time {value.isoformat()} has no time zone")
    if offset.total_seconds() % 60 or offset.microseconds:
        raise ValueError(f"date-time offset {offset} is not a whole number of minutes")
    if abs(offset.total_seconds()) >= 24 * 3600:  # pragma: no cover - tzinfo forbids it
        raise ValueError(f"date-time offset {offset} is out of range")
    text = value.replace(tzinfo=None).isoformat()
    if offset.total_seconds() == 0:
        return text + "Z"
    sign = "-" if offset.total_seconds() < 0 else "+"
    minutes = int(abs(offset.total_seconds()) // 60)
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"
