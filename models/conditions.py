"""The condition tree: the stored (JSON) form of a segment's formula.

Every node is a frozen pydantic model with a literal ``node`` tag, so a tree
round-trips through JSON exactly and ``Condition`` is a discriminated union.
The formula text (``models.formula``) parses to and formats from this tree.

Semantics the evaluator implements (documented in docs/formula.md):
- a missing attribute makes a comparison false; only ``not exists`` is true;
- comparisons never coerce across types (``"3" = 3`` is false);
- ``within last N unit`` windows are ``[now - N unit, now]`` (both inclusive).
"""

from __future__ import annotations

import functools
from datetime import date, datetime
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from models.ids import Id

__all__ = [
    "BUCKETS",
    "AggregateCondition",
    "AggregateFunc",
    "AllOf",
    "AnniversaryWindow",
    "AnyOf",
    "Between",
    "Bucket",
    "BucketOp",
    "CompareOp",
    "Comparison",
    "Condition",
    "Consented",
    "CountOp",
    "DateLiteral",
    "DateTimeLiteral",
    "DateWithin",
    "EverWindow",
    "Exists",
    "InSegment",
    "LastPerformed",
    "Literal_",
    "Negation",
    "Node",
    "Performed",
    "RangeWindow",
    "RelativeTime",
    "RelativeWindow",
    "TimeUnit",
    "Window",
]


class Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def model_post_init(self, context: Any, /) -> None:
        # The ``node`` / ``window`` tags are defaults, so a node built in code
        # would lose them in ``model_dump(exclude_unset=True)`` (what the
        # codec sends) and the JSON could not be read back. Count them as set.
        values = self.__dict__
        for tag in _tags(type(self)):
            if isinstance(values.get(tag), str):
                self.__pydantic_fields_set__.add(tag)


@functools.cache
def _tags(cls: type[BaseModel]) -> tuple[str, ...]:
    """The tag fields a node class has (looked up once per class: this runs
    for every node of every definition validated)."""
    return tuple(tag for tag in ("node", "window") if tag in cls.model_fields)


# --- literal values --------------------------------------------------------

TimeUnit = Literal["minutes", "hours", "days", "weeks"]


class DateLiteral(Node):
    """A calendar date (``2026-01-01`` in formula text)."""

    date: date


class DateTimeLiteral(Node):
    """An instant (``2026-01-01T09:30:00Z`` in formula text); always tz-aware."""

    datetime: datetime


class RelativeTime(Node):
    """An instant relative to the engine clock: ``30 days ago`` / ``7 days from now``."""

    amount: int = Field(ge=0)
    unit: TimeUnit
    direction: Literal["ago", "from_now"] = "ago"


# A literal in a condition. Strings, numbers and booleans are plain JSON;
# dates and relative times are tagged objects so they never pass for strings.
Literal_ = Union[bool, int, float, str, DateLiteral, DateTimeLiteral, RelativeTime]


# --- profile / firmographic / event-property conditions ---------------------

CompareOp = Literal[
    "=", "!=", "<", "<=", ">", ">=", "in", "not in", "contains", "starts with"
]


class Comparison(Node):
    """``field OP value``. ``field`` is a dotted path: ``city``,
    ``account.industry``; inside a ``where`` clause it names an event
    property. For ``in`` / ``not in`` the value is a list."""

    node: Literal["compare"] = "compare"
    field: str
    op: CompareOp
    value: Literal_ | list[Literal_]


class Exists(Node):
    """``field exists`` / ``field not exists`` (the only check true on missing)."""

    node: Literal["exists"] = "exists"
    field: str
    negated: bool = False


class Between(Node):
    """``field between low and high`` — inclusive on both ends."""

    node: Literal["between"] = "between"
    field: str
    low: Literal_
    high: Literal_


class RelativeWindow(Node):
    """``within last N unit`` / ``within next N unit`` of the engine clock."""

    window: Literal["relative"] = "relative"
    direction: Literal["last", "next"] = "last"
    amount: int = Field(ge=0)
    unit: TimeUnit


class AnniversaryWindow(Node):
    """``field in next N days`` / ``in last N days``: the yearly anniversary of a
    date field (birthdays, contract renewals), in the segment's time zone."""

    node: Literal["anniversary"] = "anniversary"
    field: str
    direction: Literal["last", "next"] = "next"
    days: int = Field(ge=0)


class DateWithin(Node):
    """``signed_up_at within last 14 days``: an instant field inside a window
    relative to now."""

    node: Literal["date_within"] = "date_within"
    field: str
    window: RelativeWindow


# --- behavioural conditions --------------------------------------------------


class RangeWindow(Node):
    """``between 2026-01-01 and 2026-03-31`` — absolute, inclusive; dates are
    read in the segment's time zone (``end`` date covers the whole day)."""

    window: Literal["range"] = "range"
    start: DateLiteral | DateTimeLiteral
    end: DateLiteral | DateTimeLiteral


class EverWindow(Node):
    window: Literal["ever"] = "ever"


Window = Annotated[
    Union[RelativeWindow, RangeWindow, EverWindow], Field(discriminator="window")
]

CountOp = Literal["at least", "at most", "exactly"]


class Performed(Node):
    """``performed TYPE [where COND] [at least|at most|exactly N times] WINDOW``.
    Absence is ``not performed …`` (a ``Negation``)."""

    node: Literal["performed"] = "performed"
    event_type: str
    where: Condition | None = None
    count_op: CountOp = "at least"
    count: int = Field(default=1, ge=0)
    window: Window = EverWindow()


class LastPerformed(Node):
    """``last performed TYPE [where COND] before|after TIME``: recency of the
    latest matching event. False when the contact never performed it."""

    node: Literal["last_performed"] = "last_performed"
    event_type: str
    where: Condition | None = None
    op: Literal["before", "after"]
    at: RelativeTime | DateLiteral | DateTimeLiteral


AggregateFunc = Literal["sum", "avg", "min", "max", "count distinct", "most frequent"]


class AggregateCondition(Node):
    """``sum amount of purchase [where COND] WINDOW >= 500``;
    ``most frequent category of purchase ever = "shoes"``.
    An aggregate over no events is missing (the condition is false)."""

    node: Literal["aggregate"] = "aggregate"
    func: AggregateFunc
    property: str
    event_type: str
    where: Condition | None = None
    window: Window = EverWindow()
    op: CompareOp
    value: Literal_ | list[Literal_]


# --- splits and holdouts ----------------------------------------------------------

#: buckets per seed: a contact's bucket is 0 … BUCKETS - 1
BUCKETS = 10_000

BucketOp = Literal["=", "!=", "<", "<=", ">", ">="]


class Bucket(Node):
    """``bucket("spring-test") < 1000``: the contact's stable hash bucket
    (0-9999) for a seed, compared with a whole number 0-10000. The bucket
    is the first 8 bytes of SHA-256 over ``seed + "/" + contact_id`` (UTF-8),
    read as a big-endian unsigned integer, modulo 10,000 (docs/formula.md,
    "Splits and holdouts"): the same contact and seed give the same bucket
    on every worker, after restarts and in replays. ``< 1000`` is 10 % of
    contacts; different seeds split independently."""

    node: Literal["bucket"] = "bucket"
    seed: Id
    op: BucketOp
    value: StrictInt = Field(ge=0, le=BUCKETS)


# --- consent --------------------------------------------------------------------


class Consented(Node):
    """``consented to email for "newsletter"``, ``consented to transactional
    sms``: the contact's consent for a channel, purpose (commercial by
    default) and topic (absent: channel-wide). Semantics in
    docs/segments.md, "Consent"."""

    node: Literal["consented"] = "consented"
    channel: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    purpose: Literal["commercial", "transactional"] = "commercial"
    topic: Id | None = None


# --- segment references and logic ---------------------------------------------


class InSegment(Node):
    """``in segment "vip"``; ``not in segment "vip"`` is its ``Negation``."""

    node: Literal["in_segment"] = "in_segment"
    segment_id: str


class AllOf(Node):
    node: Literal["and"] = "and"
    args: list[Condition] = Field(min_length=2)


class AnyOf(Node):
    node: Literal["or"] = "or"
    args: list[Condition] = Field(min_length=2)


class Negation(Node):
    node: Literal["not"] = "not"
    arg: Condition


Condition = Annotated[
    Union[
        Comparison,
        Exists,
        Between,
        AnniversaryWindow,
        DateWithin,
        Performed,
        LastPerformed,
        AggregateCondition,
        InSegment,
        Bucket,
        Consented,
        AllOf,
        AnyOf,
        Negation,
    ],
    Field(discriminator="node"),
]

for _model in (Performed, LastPerformed, AggregateCondition, AllOf, AnyOf, Negation):
    _model.model_rebuild()
