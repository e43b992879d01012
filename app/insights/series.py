"""The per-segment hourly series of membership changes (issue #15, insights):
joins, leaves and their causes per hour, and the size at the end of each
hour, folded incrementally from the membership-changes topic.

The fold applies the consumers' documented filter (README, "A segment"):
per (segment, contact) the last applied ``sequence`` is kept and a change
whose sequence is not greater is dropped (a replay after a crash); an
erasure (cause ``erasure``) resets the pair's mark, since an erased contact
that comes back starts again at 1. Membership follows the parity of the
last applied sequence (odd = member), so only real transitions count: a
``joined`` counts when the pair was not a member, a ``left`` when it was
(an erasure of a former member is not a leave).

What is stored, per segment, as bytes keys (this module defines them; the
store in ``app.insights.store`` only reads and writes them):

- ``h<segment>/<hour>``: that hour's counts (JSON: ``j`` joins, ``l``
  leaves, ``c`` {cause kind: [joined, left]}); hours are UTC hours since
  the epoch, fixed width so that key order is time order;
- ``t<segment>``: the segment's size by the fold (joins - leaves, all time);
- ``s<segment>/<contact>``: the pair's last applied sequence.

The size at the end of hour H is ``total - sum(net of the hours after H)``,
so changes may arrive in any order of their ``at`` (partitions are read in
no fixed order with each other) and old hours can be pruned without
touching the sizes of the newer ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from models.change_events import native_change

__all__ = [
    "Change",
    "HourCounts",
    "SeriesFold",
    "Step",
    "hour_key",
    "hour_of",
    "hour_prefix",
    "parse_change",
    "points",
]

Step = Literal["hour", "day"]
HOUR_SECONDS = 3600
_HOUR_OFFSET = 10**8  # hour keys stay positive and fixed width (9 digits)
ERASURE = "erasure"


@dataclass(frozen=True, slots=True)
class Change:
    """The fields of a ``models.changes.MembershipChange`` the fold uses."""

    segment_id: str
    contact_id: str
    joined: bool
    hour: int  # UTC hours since the epoch of ``at``
    cause: str
    sequence: int


def hour_of(at: datetime) -> int:
    return int(at.timestamp() // HOUR_SECONDS)


def hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * HOUR_SECONDS, UTC)


def parse_change(raw: bytes) -> Change | None:
    """A membership-changes record's value, or None when it is not one
    (the topic is written by the evaluator only, but a fold must not stop
    on a record it cannot read)."""
    try:
        value = native_change(raw)  # native, or a CloudEvent's data
        at = datetime.fromisoformat(value["at"])
        if at.tzinfo is None:
            return None
        change, sequence = value["change"], value["sequence"]
        if change not in ("joined", "left") or not isinstance(sequence, int) or sequence < 1:
            return None
        segment_id, contact_id = value["segment_id"], value["contact_id"]
        cause = (value.get("cause") or {}).get("kind") or "unknown"
        if not all(isinstance(v, str) for v in (segment_id, contact_id, cause)):
            return None
        return Change(segment_id, contact_id, change == "joined", hour_of(at), cause, sequence)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError,
            OverflowError):
        return None


def hour_key(segment_id: str, hour: int) -> bytes:
    return b"h" + segment_id.encode() + b"/" + b"%09d" % (hour + _HOUR_OFFSET)


def hour_prefix(segment_id: str) -> tuple[bytes, bytes]:
    """(lower, upper) bounds of one segment's hour keys ('0' follows '/')."""
    base = b"h" + segment_id.encode()
    return base + b"/", base + b"0"


def hour_from_key(key: bytes) -> int:
    return int(key[-9:]) - _HOUR_OFFSET


def total_key(segment_id: str) -> bytes:
    return b"t" + segment_id.encode()


def pair_key(segment_id: str, contact_id: str) -> bytes:
    return b"s" + segment_id.encode() + b"/" + contact_id.encode()


@dataclass(slots=True)
class HourCounts:
    joins: int = 0
    leaves: int = 0
    causes: dict[str, list[int]] = field(default_factory=dict)  # kind -> [joined, left]

    @property
    def net(self) -> int:
        return self.joins - self.leaves

    def add(self, joined: bool, cause: str) -> None:
        counts = self.causes.setdefault(cause, [0, 0])
        if joined:
            self.joins += 1
            counts[0] += 1
        else:
            self.leaves += 1
            counts[1] += 1

    def merge(self, other: HourCounts) -> None:
        self.joins += other.joins
        self.leaves += other.leaves
        for kind, (j, left) in other.causes.items():
            counts = self.causes.setdefault(kind, [0, 0])
            counts[0] += j
            counts[1] += left

    def encode(self) -> bytes:
        return orjson.dumps({"j": self.joins, "l": self.leaves, "c": self.causes})

    @classmethod
    def decode(cls, raw: bytes) -> HourCounts:
        value = orjson.loads(raw)
        return cls(value["j"], value["l"], {k: list(v) for k, v in value["c"].items()})


class SeriesFold:
    """Applies changes over a key-value state read through ``read`` (bytes
    key -> bytes or None); what they change stays in an overlay until
    ``updates()`` hands it over to be written (one batch)."""

    def __init__(self, read: Callable[[bytes], bytes | None]) -> None:
        self._read = read
        self._pairs: dict[bytes, int | None] = {}  # None: mark reset (erasure)
        self._hours: dict[bytes, HourCounts] = {}
        self._totals: dict[bytes, int] = {}
        self.newest_hour: int | None = None  # the latest hour a counted change fell in
        self.applied = 0  # changes that passed the sequence filter
        self.dropped = 0  # replays dropped by it

    def _last(self, key: bytes) -> int:
        if key in self._pairs:
            return self._pairs[key] or 0
        raw = self._read(key)
        return int(raw) if raw is not None else 0

    def _hour(self, segment_id: str, hour: int) -> HourCounts:
        key = hour_key(segment_id, hour)
        counts = self._hours.get(key)
        if counts is None:
            raw = self._read(key)
            counts = self._hours[key] = HourCounts.decode(raw) if raw is not None else HourCounts()
        return counts

    def _total(self, key: bytes) -> int:
        if key not in self._totals:
            raw = self._read(key)
            self._totals[key] = int(raw) if raw is not None else 0
        return self._totals[key]

    def apply(self, change: Change) -> None:
        key = pair_key(change.segment_id, change.contact_id)
        last = self._last(key)
        if change.sequence <= last:
            self.dropped += 1
            return
        self.applied += 1
        was_member = last % 2 == 1
        if change.joined != was_member:  # a transition: count it
            self._hour(change.segment_id, change.hour).add(change.joined, change.cause)
            tkey = total_key(change.segment_id)
            self._totals[tkey] = self._total(tkey) + (1 if change.joined else -1)
            if self.newest_hour is None or change.hour > self.newest_hour:
                self.newest_hour = change.hour
        self._pairs[key] = None if change.cause == ERASURE else change.sequence

    def updates(self) -> dict[bytes, bytes | None]:
        out: dict[bytes, bytes | None] = {}
        for key, seq in self._pairs.items():
            out[key] = None if seq is None else b"%d" % seq
        for key, counts in self._hours.items():
            out[key] = counts.encode()
        for key, total in self._totals.items():
            out[key] = b"%d" % total
        return out


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def bucket_of(hour: int, step: Step) -> int:
    """The first hour of the bucket holding ``hour``."""
    return hour - hour % 24 if step == "day" else hour


def points(hours: Mapping[int, HourCounts], total: int, first: int, last: int,
           step: Step) -> list[dict[str, Any]]:
    """The series from the bucket holding hour ``first`` to the one holding
    ``last`` (both included): per bucket joins, leaves, causes and the size
    at its end. ``hours`` must hold every stored hour after ``first``'s
    bucket starts (later ones too: the sizes are counted back from
    ``total``, the size after every change)."""
    width = 24 if step == "day" else 1
    start, stop = bucket_of(first, step), bucket_of(last, step)
    buckets: dict[int, HourCounts] = {}
    after: dict[int, int] = {}  # bucket start -> net of the hours after the bucket ends
    beyond = 0  # net of the hours after the last bucket
    for hour, counts in hours.items():
        b = bucket_of(hour, step)
        if b > stop:
            beyond += counts.net
        elif b >= start:
            buckets.setdefault(b, HourCounts()).merge(counts)
    out = []
    running = beyond
    for b in range(stop, start - 1, -width):  # newest first: sizes count back
        counts = buckets.get(b, HourCounts())
        after[b] = running
        running += counts.net
    for b in range(start, stop + 1, width):
        counts = buckets.get(b, HourCounts())
        out.append({
            "start": _iso(hour_start(b)),
            "joins": counts.joins,
            "leaves": counts.leaves,
            "size": total - after[b],
            "causes": {kind: {"joined": j, "left": left}
                       for kind, (j, left) in sorted(counts.causes.items())},
        })
    return out


def cause_totals(series: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Joins and leaves by cause kind over a whole series."""
    totals: dict[str, dict[str, int]] = {}
    for point in series:
        for kind, counts in point["causes"].items():
            acc = totals.setdefault(kind, {"joined": 0, "left": 0})
            acc["joined"] += counts["joined"]
            acc["left"] += counts["left"]
    return dict(sorted(totals.items()))
