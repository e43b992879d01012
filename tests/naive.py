"""A deliberately naive reference evaluator, for differential tests.

It walks the condition tree directly with ``datetime`` arithmetic and the
contact's full, unbounded, de-duplicated event list, and recomputes every
live segment from scratch. It shares no evaluation code with the compiler
(only ``value_key`` for distinct values), so the incremental engine — its
index, due times, bounded history and running features — can be checked
against it after every step.
"""

from __future__ import annotations

import calendar
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import reduce
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from engine.values import add_number, value_key
from models.conditions import (
    AggregateCondition,
    AllOf,
    AnniversaryWindow,
    AnyOf,
    Between,
    Bucket,
    Comparison,
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
from models.inputs import ContactUpsert, Interaction
from models.segments import SegmentDefinition

__all__ = ["NaiveContact", "naive_bucket", "naive_memberships"]

_UNITS = {"minutes": 60, "hours": 3600, "days": 86400, "weeks": 7 * 86400}


@dataclass
class NaiveContact:
    contact_id: str
    attrs: dict[str, Any] = field(default_factory=dict)
    account_id: str | None = None
    consent: dict[str, bool] = field(default_factory=dict)
    events: list[Interaction] = field(default_factory=list)
    static: dict[str, bool] = field(default_factory=dict)
    #: (channel, purpose, topic or None) -> (given, when)
    records: dict[tuple[str, str, str | None], tuple[bool, datetime]] = field(
        default_factory=dict)

    def upsert_consent(self, inp: ContactUpsert, now: datetime) -> None:
        """Flags merged (or replaced), records kept by newest time."""
        if inp.mode == "replace":
            self.consent = dict(inp.consent)
        else:
            self.consent.update(inp.consent)
        for r in inp.consents:
            when = r.at or inp.updated_at or now
            key = (r.channel, r.purpose, r.topic)
            if key in self.records and self.records[key][1] > when:
                continue
            self.records[key] = (r.status == "given", when)

    def add_event(self, e: Interaction) -> None:
        if all(x.event_id != e.event_id for x in self.events):
            self.events.append(e)


def _delta(amount: int, unit: str) -> timedelta:
    return timedelta(seconds=amount * _UNITS[unit])


class _Eval:
    def __init__(self, c: NaiveContact, account: Mapping[str, Any], now: datetime,
                 tz: ZoneInfo, members: dict[str, bool]) -> None:
        self.c, self.account, self.now, self.tz, self.members = c, account, now, tz, members

    # -- values -------------------------------------------------------------

    def lookup(self, path: str, props: dict[str, Any] | None) -> Any:
        parts = path.split(".")
        if props is not None:
            cur: Any = props
        elif parts[0] == "account" and len(parts) > 1:
            cur, parts = self.account, parts[1:]
        elif parts[0] == "consent" and len(parts) > 1:
            cur, parts = self.c.consent, parts[1:]
        else:
            cur = self.c.attrs
        for p in parts:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(p)
        return cur

    def temporal(self, v: Any) -> date | datetime | None:
        if not isinstance(v, str):
            return None
        try:
            if len(v) == 10:
                return date.fromisoformat(v)
            dt = datetime.fromisoformat(v)
        except ValueError:
            return None
        return dt if dt.tzinfo is not None else dt.replace(tzinfo=self.tz)

    def local(self, dt: datetime) -> date:
        return dt.astimezone(self.tz).date()

    def compare(self, v: Any, op: str, lit: Any) -> bool:
        if v is None:
            return False
        if isinstance(lit, (DateLiteral, DateTimeLiteral, RelativeTime)):
            a = self.temporal(v)
            if a is None:
                return False
            if isinstance(lit, DateLiteral):
                b: Any = lit.date
            elif isinstance(lit, DateTimeLiteral):
                b = lit.datetime
            else:
                sign = -1 if lit.direction == "ago" else 1
                b = self.now + sign * _delta(lit.amount, lit.unit)
            a_day, b_day = type(a) is date, type(b) is date
            if a_day or b_day:  # calendar comparison
                a = a if a_day else self.local(a)  # type: ignore[arg-type]
                b = b if b_day else self.local(b)
            return _ordered(op, a, b)
        if op in ("in", "not in"):
            kinds = {_kind(x) for x in lit}
            k = _kind(v)
            hit = any(_kind(x) == k and x == v for x in lit)
            if op == "in":
                return k is not None and hit
            return k in kinds and not hit
        if op == "contains":
            if isinstance(v, list):
                return any(_kind(x) == _kind(lit) and x == lit for x in v)
            return isinstance(v, str) and isinstance(lit, str) and lit in v
        if op == "starts with":
            return isinstance(v, str) and v.startswith(lit)
        if _kind(v) != _kind(lit) or _kind(v) is None:
            return False
        return _ordered(op, v, lit)

    # -- conditions -----------------------------------------------------------

    def ev(self, n: Any, props: dict[str, Any] | None = None) -> bool:
        if isinstance(n, AllOf):
            return all(self.ev(a, props) for a in n.args)
        if isinstance(n, AnyOf):
            return any(self.ev(a, props) for a in n.args)
        if isinstance(n, Negation):
            return not self.ev(n.arg, props)
        if isinstance(n, Comparison):
            return self.compare(self.lookup(n.field, props), n.op, n.value)
        if isinstance(n, Exists):
            return (self.lookup(n.field, props) is None) == n.negated
        if isinstance(n, Between):
            v = self.lookup(n.field, props)
            return self.compare(v, ">=", n.low) and self.compare(v, "<=", n.high)
        if isinstance(n, InSegment):
            return self.members.get(n.segment_id, False)
        if isinstance(n, Consented):
            return self.consented(n)
        if isinstance(n, Bucket):
            return _ordered(n.op, naive_bucket(n.seed, self.c.contact_id), n.value)
        if isinstance(n, DateWithin):
            return self.date_within(n, props)
        if isinstance(n, AnniversaryWindow):
            return self.anniversary(n, props)
        if isinstance(n, Performed):
            cnt = len(self.in_window(self.matching(n.event_type, n.where), n.window))
            return {"at least": cnt >= n.count, "at most": cnt <= n.count,
                    "exactly": cnt == n.count}[n.count_op]
        if isinstance(n, LastPerformed):
            return self.last_performed(n)
        if isinstance(n, AggregateCondition):
            return self.aggregate(n)
        raise TypeError(n)

    def consented(self, n: Consented) -> bool:
        whole = self.c.records.get((n.channel, n.purpose, None))
        whole_given: bool | None = None
        whole_at: datetime | None = None
        if whole is not None:
            whole_given, whole_at = whole
        elif n.purpose == "commercial" and isinstance(self.c.consent.get(n.channel), bool):
            whole_given = self.c.consent[n.channel]  # a flag: no time
        if n.topic is None:
            return whole_given is True
        rec = self.c.records.get((n.channel, n.purpose, n.topic))
        if rec is None or not rec[0]:
            return False
        if whole_given is False:  # withdrawn from the whole channel
            return whole_at is not None and whole_at < rec[1]
        return True

    def date_within(self, n: DateWithin, props: dict[str, Any] | None) -> bool:
        a = self.temporal(self.lookup(n.field, props))
        if a is None:
            return False
        w = n.window
        d = _delta(w.amount, w.unit)
        if type(a) is date:
            if w.unit in ("days", "weeks"):
                today = self.local(self.now)
                days = timedelta(days=w.amount * (7 if w.unit == "weeks" else 1))
                lo, hi = (today - days, today) if w.direction == "last" else (today, today + days)
            elif w.direction == "last":
                lo, hi = self.local(self.now - d), self.local(self.now)
            else:
                lo, hi = self.local(self.now), self.local(self.now + d)
            return lo <= a <= hi
        assert isinstance(a, datetime)
        if w.direction == "last":
            return self.now - d <= a <= self.now
        return self.now <= a <= self.now + d

    def anniversary(self, n: AnniversaryWindow, props: dict[str, Any] | None) -> bool:
        a = self.temporal(self.lookup(n.field, props))
        if a is None:
            return False
        born = a if type(a) is date else self.local(a)  # type: ignore[arg-type]
        today = self.local(self.now)
        for y in range(today.year - 2, today.year + 3):
            day = born.day
            if born.month == 2 and day == 29 and not calendar.isleap(y):
                day = 28
            ann = date(y, born.month, day)
            span = timedelta(days=n.days)
            if n.direction == "next" and today <= ann <= today + span:
                return True
            if n.direction == "last" and today - span <= ann <= today:
                return True
        return False

    def matching(self, etype: str, where: Any) -> list[Interaction]:
        evs = [e for e in self.c.events if e.type == etype]
        if where is not None:
            evs = [e for e in evs if self.ev(where, e.properties)]
        return sorted(evs, key=lambda e: e.occurred_at)

    def in_window(self, evs: list[Interaction], w: Any) -> list[Interaction]:
        if isinstance(w, EverWindow):
            return evs
        if isinstance(w, RangeWindow):
            def after_start(t: datetime) -> bool:
                if isinstance(w.start, DateLiteral):
                    return self.local(t) >= w.start.date
                return t >= w.start.datetime

            def before_end(t: datetime) -> bool:
                if isinstance(w.end, DateLiteral):
                    return self.local(t) <= w.end.date
                return t <= w.end.datetime

            return [e for e in evs if after_start(e.occurred_at) and before_end(e.occurred_at)]
        assert isinstance(w, RelativeWindow)
        d = _delta(w.amount, w.unit)
        lo, hi = (self.now - d, self.now) if w.direction == "last" else (self.now, self.now + d)
        return [e for e in evs if lo <= e.occurred_at <= hi]

    def last_performed(self, n: LastPerformed) -> bool:
        evs = self.matching(n.event_type, n.where)
        if not evs:
            return False
        last = max(e.occurred_at for e in evs)
        at = n.at
        a: Any
        b: Any
        if isinstance(at, DateLiteral):
            a, b = self.local(last), at.date
        elif isinstance(at, DateTimeLiteral):
            a, b = last, at.datetime
        else:
            sign = -1 if at.direction == "ago" else 1
            a, b = last, self.now + sign * _delta(at.amount, at.unit)
        return a < b if n.op == "before" else a > b

    def aggregate(self, n: AggregateCondition) -> bool:
        evs = self.in_window(self.matching(n.event_type, n.where), n.window)
        vals = [(self.lookup(n.property, e.properties), e.occurred_at) for e in evs]
        nums = [v for v, _ in vals if _kind(v) == "n"]
        result: Any = None
        if n.func == "sum" and nums:
            result = reduce(add_number, nums, 0)
        elif n.func == "avg" and nums:
            result = reduce(add_number, nums, 0) / len(nums)
        elif n.func == "min" and nums:
            result = min(nums)
        elif n.func == "max" and nums:
            result = max(nums)
        elif n.func in ("count distinct", "most frequent"):
            counts: dict[str, list[Any]] = {}
            for v, t in vals:
                k = value_key(v)
                if k is not None:
                    e = counts.setdefault(k, [0, t])
                    e[0] += 1
                    e[1] = max(e[1], t)
            if counts:
                if n.func == "count distinct":
                    result = len(counts)
                else:
                    best = sorted(counts.items(), key=lambda kv: (-kv[1][0], kv[0]))
                    top = [kv for kv in best if kv[1][0] == best[0][1][0]]
                    latest = max(kv[1][1] for kv in top)
                    result = orjson.loads(min(kv[0] for kv in top if kv[1][1] == latest))
        if result is None:
            return False
        return self.compare(result, n.op, n.value)


def _kind(v: Any) -> str | None:
    if isinstance(v, bool):
        return "b"
    if isinstance(v, (int, float)):
        return "n"
    if isinstance(v, str):
        return "s"
    return None


def _ordered(op: str, a: Any, b: Any) -> bool:
    if op == "=":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    if op == ">=":
        return bool(a >= b)
    raise ValueError(op)


def naive_bucket(seed: str, contact_id: str) -> int:
    """The documented bucket (docs/formula.md), written out again here:
    SHA-256 of "seed/contact_id", its first 8 bytes as an unsigned
    big-endian number, modulo 10,000."""
    digest = hashlib.sha256((seed + "/" + contact_id).encode("utf-8")).hexdigest()
    return int(digest[:16], 16) % 10_000


def naive_memberships(
    defs: list[SegmentDefinition],
    c: NaiveContact,
    accounts: Mapping[str, Mapping[str, Any]],
    now: datetime,
    control: tuple[str, int] | None = None,
) -> dict[str, bool]:
    """Membership of every live segment, recomputed from scratch.
    ``defs`` must list referenced segments before the ones using them.
    ``control``: the control group (seed, buckets): its contacts are in
    no segment."""
    if control is not None and naive_bucket(control[0], c.contact_id) < control[1]:
        return {d.id: False for d in defs if d.status == "live"}
    members: dict[str, bool] = {}
    account = accounts.get(c.account_id, {}) if c.account_id else {}
    for d in defs:
        if d.status != "live":
            continue
        forced = c.static.get(d.id, c.contact_id in d.include)
        if c.contact_id in d.exclude:
            m = False
        elif forced:
            m = True
        elif d.kind == "static" or d.condition is None:
            m = False
        else:
            m = _Eval(c, account, now, ZoneInfo(d.timezone), members).ev(d.condition)
        members[d.id] = m
    return members
