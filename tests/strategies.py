"""Hypothesis strategies for condition trees (reusable by any test suite).

``condition_trees()`` draws arbitrary *valid* trees: every tree it yields is
accepted by ``models.formula.format_condition`` and satisfies
``parse_formula(format_condition(t)) == t``. Valid means the rules of
docs/formula.md: lists only after ``in`` / ``not in`` (never empty), strings
after ``starts with``, no booleans with ``<``…, known event types, only
property conditions inside ``where``, absolute ranges not reversed,
time-zone-aware date-times with whole-minute offsets, finite floats.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from functools import cache
from typing import Any

from hypothesis import strategies as st

# Factories are cached: one strategy object per argument set, so hypothesis
# validates each once instead of on every draw (a 2x speed-up here).
from models.conditions import (
    AggregateCondition,
    AllOf,
    AnniversaryWindow,
    AnyOf,
    Between,
    Bucket,
    BucketOp,
    CompareOp,
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
from models.inputs import EVENT_TYPES

__all__ = [
    "condition_trees",
    "date_literals",
    "datetime_literals",
    "event_types",
    "field_paths",
    "property_conditions",
    "relative_times",
    "scalars",
    "windows",
]

_COMMON_NAMES = [
    "city",
    "age",
    "score",
    "vip",
    "email",
    "phone",
    "signed_up_at",
    "birthday",
    "amount",
    "currency",
    "campaign",
    "category",
    "product_id",
    "industry",
    "employees",
]
# Names that are keywords somewhere, or need backticks: the formatter must quote them.
_AWKWARD_NAMES = [
    "count",
    "in",
    "and",
    "not",
    "last",
    "sum",
    "time",
    "True",
    "first name",
    "a`b",
    "1st",
    "é",
    "days",
    "ago",
    "with space",
]

_UNITS = ["minutes", "hours", "days", "weeks"]
_ORDERING: list[CompareOp] = ["<", "<=", ">", ">="]
_BUCKET_OPS: list[BucketOp] = ["=", "!=", "<", "<=", ">", ">="]


@cache
def _names() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(_COMMON_NAMES),
        st.sampled_from(_AWKWARD_NAMES),
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True),
        st.text(
            st.characters(codec="utf-8", exclude_characters=".\n"),
            min_size=1,
            max_size=8,
        ),
    )


@cache
def field_paths() -> st.SearchStrategy[str]:
    """Dotted paths of one to three segments (``account.industry``)."""
    return st.lists(_names(), min_size=1, max_size=3).map(".".join)


@cache
def event_types() -> st.SearchStrategy[str]:
    return st.sampled_from(EVENT_TYPES)


@cache
def date_literals() -> st.SearchStrategy[DateLiteral]:
    return st.dates(date(1900, 1, 1), date(2100, 12, 31)).map(lambda d: DateLiteral(date=d))


_OFFSETS = st.one_of(
    st.just(UTC),
    st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m))),
)


@cache
def datetime_literals() -> st.SearchStrategy[DateTimeLiteral]:
    return st.datetimes(datetime(1900, 1, 1), datetime(2100, 12, 31), timezones=_OFFSETS).map(
        lambda dt: DateTimeLiteral(datetime=dt.replace(fold=0))
    )


@cache
def relative_times() -> st.SearchStrategy[RelativeTime]:
    return st.builds(
        RelativeTime,
        amount=st.integers(0, 10_000),
        unit=st.sampled_from(_UNITS),
        direction=st.sampled_from(["ago", "from_now"]),
    )


@cache
def scalars() -> st.SearchStrategy[Any]:
    """Every kind of literal a condition can hold."""
    return st.one_of(
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(st.characters(codec="utf-8"), max_size=12),
        date_literals(),
        datetime_literals(),
        relative_times(),
    )


@cache
def _non_bool_scalars() -> st.SearchStrategy[Any]:
    return scalars().filter(lambda v: not isinstance(v, bool))


@cache
def _plain_scalars() -> st.SearchStrategy[Any]:
    """JSON scalars only: what ``in`` lists and ``contains`` take."""
    return st.one_of(
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(st.characters(codec="utf-8"), max_size=12),
    )


@cache
def _between_bounds() -> st.SearchStrategy[tuple[Any, Any]]:
    """Two bounds of one family: numbers, strings, or points in time."""
    numbers = st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False))
    strings = st.text(st.characters(codec="utf-8"), max_size=12)
    times = st.one_of(date_literals(), datetime_literals(), relative_times())
    return st.one_of(*[st.tuples(f, f) for f in (numbers, strings, times)])


@st.composite
def _op_values(draw: st.DrawFn) -> tuple[CompareOp, Any]:
    """An operator with a value it accepts."""
    ops: list[CompareOp] = ["=", "!=", *_ORDERING, "in", "not in", "contains", "starts with"]
    op = draw(st.sampled_from(ops))
    if op in ("in", "not in"):
        return op, draw(st.lists(_plain_scalars(), min_size=1, max_size=4))
    if op == "starts with":
        return op, draw(st.text(max_size=8))
    if op == "contains":
        return op, draw(_plain_scalars())
    if op in _ORDERING:
        return op, draw(_non_bool_scalars())
    return op, draw(scalars())


_OP_VALUES = _op_values()


@st.composite
def _comparisons(draw: st.DrawFn) -> Comparison:
    op, value = draw(_OP_VALUES)
    return Comparison(field=draw(field_paths()), op=op, value=value)


@cache
def _relative_windows() -> st.SearchStrategy[RelativeWindow]:
    return st.builds(
        RelativeWindow,
        direction=st.sampled_from(["last", "next"]),
        amount=st.integers(0, 10_000),
        unit=st.sampled_from(_UNITS),
    )


@st.composite
def _range_windows(draw: st.DrawFn) -> RangeWindow:
    start = draw(st.one_of(date_literals(), datetime_literals()))
    end = draw(st.one_of(date_literals(), datetime_literals()))
    if type(start) is type(end):
        a = start.date if isinstance(start, DateLiteral) else start.datetime  # type: ignore[union-attr]
        b = end.date if isinstance(end, DateLiteral) else end.datetime  # type: ignore[union-attr]
        if b < a:
            start, end = end, start
    return RangeWindow(start=start, end=end)


@cache
def windows() -> st.SearchStrategy[Any]:
    """``within last/next N unit``, ``between A and B``, ``ever``."""
    return st.one_of(_relative_windows(), _range_windows(), st.just(EverWindow()))


@cache
def _property_leaves() -> st.SearchStrategy[Condition]:
    return st.one_of(
        _comparisons(),
        st.builds(Exists, field=field_paths(), negated=st.booleans()),
        st.builds(
            lambda field, bounds: Between(field=field, low=bounds[0], high=bounds[1]),
            field_paths(),
            _between_bounds(),
        ),
        st.builds(DateWithin, field=field_paths(), window=_relative_windows()),
        st.builds(
            AnniversaryWindow,
            field=field_paths(),
            direction=st.sampled_from(["last", "next"]),
            days=st.integers(0, 366),
        ),
    )


def _combine(children: st.SearchStrategy[Condition]) -> st.SearchStrategy[Condition]:
    lists = st.lists(children, min_size=2, max_size=4)
    return st.one_of(
        st.builds(AllOf, args=lists),
        st.builds(AnyOf, args=lists),
        st.builds(Negation, arg=children),
    )


@cache
def property_conditions(max_leaves: int = 4) -> st.SearchStrategy[Condition]:
    """Conditions over plain fields (what a ``where`` clause may hold)."""
    return st.recursive(_property_leaves(), _combine, max_leaves=max_leaves)


@cache
def _wheres() -> st.SearchStrategy[Condition | None]:
    return st.one_of(st.none(), property_conditions(max_leaves=3))


@cache
def _behavioural_leaves() -> st.SearchStrategy[Condition]:
    def aggregate(draw_op: tuple[CompareOp, Any], **kw: Any) -> AggregateCondition:
        return AggregateCondition(op=draw_op[0], value=draw_op[1], **kw)

    return st.one_of(
        st.builds(
            Performed,
            event_type=event_types(),
            where=_wheres(),
            count_op=st.sampled_from(["at least", "at most", "exactly"]),
            count=st.integers(0, 1000),
            window=windows(),
        ),
        st.builds(
            LastPerformed,
            event_type=event_types(),
            where=_wheres(),
            op=st.sampled_from(["before", "after"]),
            at=st.one_of(relative_times(), date_literals(), datetime_literals()),
        ),
        st.builds(
            aggregate,
            _OP_VALUES.filter(lambda ov: not isinstance(ov[1], RelativeTime)),
            func=st.sampled_from(["sum", "avg", "min", "max", "count distinct", "most frequent"]),
            property=field_paths(),
            event_type=event_types(),
            where=_wheres(),
            window=windows(),
        ),
        st.builds(InSegment, segment_id=st.text(min_size=1, max_size=10)),
        st.builds(
            Bucket,
            seed=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:@+\-]{0,12}", fullmatch=True),
            op=st.sampled_from(_BUCKET_OPS),
            value=st.integers(0, 10_000),
        ),
        st.builds(
            Consented,
            channel=st.one_of(st.sampled_from(["email", "sms", "push", "commercial", "in", "to",
                                               "for", "transactional"]),
                              st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)),
            purpose=st.sampled_from(["commercial", "transactional"]),
            topic=st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:@+\-]{0,12}",
                                                     fullmatch=True)),
        ),
    )


@cache
def condition_trees(max_leaves: int = 8) -> st.SearchStrategy[Condition]:
    """Arbitrary valid condition trees of every node type, nested with
    and / or / not (including same-operator nesting, which the text keeps)."""
    leaves = st.one_of(_property_leaves(), _behavioural_leaves())
    return st.recursive(leaves, _combine, max_leaves=max_leaves)
