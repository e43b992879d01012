"""Time arithmetic in integer microseconds since the Unix epoch (UTC).

Everything time-related in the engine is an ``int`` of microseconds: exact,
cheap to compare, and it makes "the instant a value flips" well defined
(a half-open interval ``[start, end)`` flips exactly at ``end``).
Calendar questions (local dates, midnights) go through ``zoneinfo``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

__all__ = [
    "DAY_US",
    "EPOCH",
    "UNIT_US",
    "Point",
    "from_us",
    "local_date",
    "local_ordinal",
    "midnight_us",
    "parse_point",
    "to_us",
    "zone",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
DAY_US = 86_400_000_000
UNIT_US: dict[str, int] = {
    "minutes": 60_000_000,
    "hours": 3_600_000_000,
    "days": DAY_US,
    "weeks": 7 * DAY_US,
}

# A parsed temporal attribute value: the instants it covers, [start, end),
# whether it is a calendar day, and its (local) day ordinal.
Point = tuple[int, int, bool, int]


def to_us(dt: datetime) -> int:
    """Aware datetime -> microseconds since epoch (exact, no float)."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r}: the engine clock must be tz-aware")
    return (dt - EPOCH) // _US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


@cache
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=1 << 16)
def midnight_us(ordinal: int, tzname: str) -> int:
    """The instant local midnight starts the day ``ordinal`` in ``tzname``.

    For a day whose midnight does not exist (DST gap at 00:00) zoneinfo's
    fold=0 rule yields the first instant of that local day."""
    d = date.fromordinal(ordinal)
    return to_us(datetime(d.year, d.month, d.day, tzinfo=zone(tzname)))


def local_date(us: int, tzname: str) -> date:
    return from_us(us).astimezone(zone(tzname)).date()


def local_ordinal(us: int, tzname: str) -> int:
    return local_date(us, tzname).toordinal()


@lru_cache(maxsize=1 << 16)
def parse_point(text: str, tzname: str) -> Point | None:
    """Parse an ISO date / datetime attribute value in the segment's zone.

    ``YYYY-MM-DD`` is a calendar day ``[local midnight, next local midnight)``;
    a datetime is one instant ``[t, t+1us)``; a datetime without offset is read
    in the segment's zone. Anything else is not a temporal value (None)."""
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            o = d.toordinal()
            return (midnight_us(o, tzname), midnight_us(o + 1, tzname), True, o)
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone(tzname))
    us = to_us(dt)
    return (us, us + 1, False, dt.astimezone(zone(tzname)).date().toordinal())
