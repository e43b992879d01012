"""Read-only views of the evaluator's state, for the HTTP API and metrics.

Only the evaluator agent writes tables; everything here reads (the tables,
the evaluator's in-memory catalogs) and never writes. Each worker answers
for the partitions it holds: ``held_partitions()`` says which, so a caller
can tell a complete answer (one worker, or every partition held here) from a
partial one.

Exact counts and member listings scan the contacts of the held partitions
(O(contacts)); scans go chunk by chunk and yield to the event loop between
chunks so the agents keep running.
"""

from __future__ import annotations

import asyncio
import base64
import time
from bisect import bisect_right
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import orjson

from agents.partitioning import partition_for
from engine import (
    Catalog,
    ContactState,
    Rebuild,
    SegmentChanged,
    apply,
    explain,
    rebuild_history,
    rebuild_needs,
)
from engine.timeutil import from_us, to_us
from models.segments import SegmentDefinition
from runtime.fields import field_warnings, merge_catalogues

__all__ = [
    "BacktestResult",
    "ContactView",
    "EngagementResult",
    "EvaluatorReads",
    "PreviewResult",
    "decode_cursor",
    "encode_cursor",
    "paginate",
]

_CHUNK = 2000
_EVENT_TIME = itemgetter(0)
# Preview evaluates a draft on the event loop: it yields after this many
# seconds of work (checked every 16 contacts), not only between chunks.
_PREVIEW_SLICE = 0.005


def encode_cursor(partition: int, after: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([partition, after])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """Raises ValueError on anything that is not a cursor we issued."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        partition, after = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except Exception as exc:
        raise ValueError("malformed cursor") from exc
    if not isinstance(partition, int) or not isinstance(after, str) or partition < 0:
        raise ValueError("malformed cursor")
    return partition, after


class _Pacer:
    """A long read's bookkeeping: ``TimeoutError`` past ``deadline``
    (``time.monotonic()``), and a yield to the event loop after each
    ``_PREVIEW_SLICE`` seconds of work so the evaluator keeps running. The
    clock is read every ``every`` calls (a contact can cost ~1 µs)."""

    def __init__(self, deadline: float | None, every: int = 1) -> None:
        self.deadline, self.every = deadline, every
        self._calls = 0
        self._slice_start = time.monotonic()

    async def tick(self) -> None:
        self._calls += 1
        if self._calls % self.every:
            return
        clock = time.monotonic()
        if self.deadline is not None and clock > self.deadline:
            raise TimeoutError
        if clock - self._slice_start > _PREVIEW_SLICE:
            await asyncio.sleep(0)
            self._slice_start = time.monotonic()


def _with_draft(cache: dict[int, Catalog], base: Catalog, live: SegmentDefinition) -> Catalog:
    """``base`` with the draft put in; partitions holding the same
    definitions share one catalog, so the draft compiles once per catalog."""
    catalog = cache.get(id(base))
    if catalog is None:
        catalog = cache[id(base)] = base.put(live)
    return catalog


async def paginate(
    fetch: Callable[[int, str | None, int], Awaitable[list[str]]],
    partitions: list[int], cursor: str | None, limit: int,
) -> tuple[list[str], str | None]:
    """One page over partitions in order: ``fetch(partition, after, n)`` gives
    up to n member ids of a partition after ``after``, sorted. The cursor is
    the (partition, id) of the page's last member; one extra member is
    fetched to know whether a next page exists."""
    start, after = decode_cursor(cursor) if cursor else (-1, None)
    found: list[str] = []
    last = (0, "")
    for partition in partitions:
        if partition < start:
            continue
        resume = after if partition == start else None
        for key in await fetch(partition, resume, limit - len(found) + 1):
            if len(found) == limit:
                return found, encode_cursor(*last)
            found.append(key)
            last = (partition, key)
    return found, None


@dataclass
class ContactView:
    contact_id: str
    partition: int
    held: bool  # this worker holds the contact's partition
    state: ContactState | None


@dataclass
class PreviewResult:
    size: int = 0
    scanned: int = 0
    sample: list[str] = field(default_factory=list)
    #: against the current members of the same segment id (impact of a change;
    #: for a new id everyone "joins")
    joins: int = 0
    leaves: int = 0
    join_sample: list[str] = field(default_factory=list)
    leave_sample: list[str] = field(default_factory=list)
    #: the oldest instant the retained history covers (None: no archive)
    history_since: datetime | None = None
    #: the draft reads running aggregates ('ever', absolute ranges): they
    #: count what is retained, i.e. since ``history_since``
    reads_all_history: bool = False


@dataclass
class EngagementResult:
    members: int = 0
    #: (UTC day, event type) -> interactions of the current members
    counts: dict[tuple[str, str], int] = field(default_factory=dict)


@dataclass
class BacktestResult:
    sizes: list[int]  # members at each point in time
    scanned: int = 0
    sample: list[str] = field(default_factory=list)  # members at the last point


class EvaluatorReads:
    """Mixed into the evaluator's handle (``agents.batch_evaluator.BatchEvaluatorHandle``
    over the runtime's partition stores; tests may stand in their own): it
    implements the hooks below, which read one held partition; everything
    here is built on them."""

    _sizes_cache: tuple[float, dict[str, int]] | None = None

    def held_partitions(self) -> set[int]:  # defined by the handle
        raise NotImplementedError

    def segment_status(self, segment_id: str) -> dict[int, dict[str, Any]]:  # likewise
        raise NotImplementedError

    @property
    def contacts_changelog(self) -> str:
        raise NotImplementedError

    @property
    def partitions(self) -> int:
        raise NotImplementedError

    # -- hooks: one held partition ---------------------------------------------------

    def _catalog(self, partition: int) -> Catalog:
        raise NotImplementedError

    def _refusals(self, partition: int) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def _contact_raw(self, partition: int, contact_id: str) -> bytes | None:
        raise NotImplementedError

    def _scan_contacts(self, partition: int, after: str | None,
                       limit: int) -> list[tuple[str, bytes]]:
        """Up to ``limit`` (contact id, state) with id > ``after``, key order."""
        raise NotImplementedError

    def _accounts(self, partition: int) -> Mapping[str, Mapping[str, Any]]:
        raise NotImplementedError

    def _now(self, partition: int) -> datetime:
        raise NotImplementedError

    def _fields(self, partition: int) -> Mapping[str, Any]:
        """The partition's field catalogue (runtime.fields); none kept: empty."""
        return {"fields": {}, "truncated": False}

    def field_catalogue(self) -> dict[str, Any]:
        """Fields seen on the held partitions' inputs, counts added."""
        return merge_catalogues(self._fields(p) for p in sorted(self.held_partitions()))

    def field_warnings(self, definition: SegmentDefinition, deps: Any = None) -> list[str]:
        """Fields the definition reads that no input of a held partition
        carried yet (warnings, never errors); none if it does not compile.
        ``deps``: what it reads, when the caller compiled it already."""
        catalog = self.catalog()
        if catalog is None or not definition.formula:
            return []
        if deps is None:
            try:
                compiled = catalog.put(definition).compiled(definition.id)
            except (ValueError, RecursionError):
                return []  # refused elsewhere, with its own reason
            if compiled is None:
                return []
            deps = compiled.deps
        return field_warnings(self.field_catalogue(), deps)

    def now(self, partition: int) -> datetime:
        """The instant the partition evaluates at (its event clock or the wall)."""
        return self._now(partition)

    def _archived(self, partition: int, first: str, last: str,
                  now: datetime) -> dict[str, list[Any]] | None:
        """Retained interactions of the contacts ``first``..``last`` (key
        order), by contact; None where no history is retained (the Faust
        evaluator)."""
        return None

    def _retention_us(self) -> int | None:
        return None

    def _backfill(self, partition: int, segment_id: str) -> Any:
        """The partition's backfill progress of the segment (``.scanned``,
        ``.complete``, ``.version``) or None."""
        raise NotImplementedError

    def _due(self) -> tuple[int, list[int]]:
        """(due entries, earliest due µs of each held partition that has one)."""
        raise NotImplementedError

    def _consumer_lag(self) -> dict[int, int]:
        raise NotImplementedError

    def _standby_lag(self) -> dict[int, int]:
        return {}  # no standby copies

    @property
    def clock_mode(self) -> str:
        """``wall`` or ``event`` (SEGMENTFLOW_CLOCK)."""
        raise NotImplementedError

    def _event_clock(self, partition: int) -> datetime | None:
        """The partition's event clock; None on the wall clock or before
        the partition has seen any event time."""
        raise NotImplementedError

    def _offsets(self, partition: int) -> tuple[int | None, int | None]:
        """(offset of the last input-log record the state includes, next
        input offset committed by this worker); None when unknown."""
        raise NotImplementedError

    def _settling(self, partition: int) -> tuple[int | None, int | None, int | None]:
        """(backfills running, batches staged, batches settled: every batch
        numbered below it has its outputs acknowledged), numbered since the
        partition was opened here; None when unknown."""
        raise NotImplementedError

    # -- catalog -------------------------------------------------------------------

    def catalog(self) -> Catalog | None:
        """The catalog of the lowest partition held here (every partition gets
        every definition, in the same order), or None when none is held."""
        held = self.held_partitions()
        return self._catalog(min(held)) if held else None

    def definitions(self) -> dict[str, SegmentDefinition]:
        """Every segment known to a held partition, newest version seen."""
        found: dict[str, SegmentDefinition] = {}
        for partition in sorted(self.held_partitions()):
            catalog = self._catalog(partition)
            for segment_id in catalog:
                defn = catalog.get(segment_id)
                if defn is not None and (segment_id not in found
                                         or defn.version > found[segment_id].version):
                    found[segment_id] = defn
        return found

    def refusal(self, segment_id: str) -> dict[str, Any] | None:
        """``refusals()`` of one segment (point reads, no scan)."""
        found = None
        for partition in self.held_partitions():
            record = self._refusals(partition).get(segment_id)
            if record is not None and (found is None or record["version"] > found["version"]):
                found = record
        return found

    def refusals(self) -> dict[str, dict[str, Any]]:
        """Segment id -> ``{"version", "reason"}`` of the newest definition a
        held partition refused (runtime/processor.py), while no later version
        is applied. Definitions are broadcast: every partition refuses alike."""
        found: dict[str, dict[str, Any]] = {}
        for partition in sorted(self.held_partitions()):
            for segment_id, record in self._refusals(partition).items():
                if segment_id not in found or record["version"] > found[segment_id]["version"]:
                    found[segment_id] = record
        return found

    # -- contacts --------------------------------------------------------------------

    def contact(self, contact_id: str) -> ContactView:
        partition = partition_for(contact_id, self.partitions)
        if partition not in self.held_partitions():
            return ContactView(contact_id, partition, False, None)
        raw = self._contact_raw(partition, contact_id)
        state = ContactState.from_bytes(raw) if raw is not None else None
        return ContactView(contact_id, partition, True, state)

    def explain(self, view: ContactView, segment_id: str) -> Any:
        """An ``engine.explain`` trace (``str()`` reads as an indented report)."""
        return explain(view.state, segment_id, self._catalog(view.partition),
                       self._now(view.partition), self._accounts(view.partition))

    async def _states(self, partition: int, after: str | None = None):  # type: ignore[no-untyped-def]
        """(contact_id, raw state) of one held partition, in key order."""
        while True:
            chunk = self._scan_contacts(partition, after, _CHUNK)
            for key, raw in chunk:
                yield key, raw
            if len(chunk) < _CHUNK:
                return
            after = chunk[-1][0]
            await asyncio.sleep(0)

    async def member_count(self, segment_id: str) -> int:
        count = 0
        for partition in sorted(self.held_partitions()):
            async for _, raw in self._states(partition):
                if ContactState.from_bytes(raw).is_member(segment_id):
                    count += 1
        return count

    async def partition_members(self, segment_id: str, partition: int, after: str | None,
                                limit: int) -> list[str]:
        """Up to ``limit`` members of one held partition with id > ``after``."""
        found: list[str] = []
        if limit <= 0:
            return found
        async for key, raw in self._states(partition, after):
            if ContactState.from_bytes(raw).is_member(segment_id):
                found.append(key)
                if len(found) >= limit:
                    break
        return found

    async def members_page(
        self, segment_id: str, cursor: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        """Up to ``limit`` members of the held partitions in (partition,
        contact id) order, and the cursor of the next page (None at the end)."""
        async def fetch(partition: int, after: str | None, n: int) -> list[str]:
            return await self.partition_members(segment_id, partition, after, n)

        return await paginate(fetch, sorted(self.held_partitions()), cursor, limit)

    async def _chunks(self, partition: int):  # type: ignore[no-untyped-def]
        """Lists of (contact_id, raw state) of one held partition, key order."""
        after: str | None = None
        while True:
            chunk = self._scan_contacts(partition, after, _CHUNK)
            if chunk:
                yield chunk
            if len(chunk) < _CHUNK:
                return
            after = chunk[-1][0]
            await asyncio.sleep(0)

    async def preview(self, draft: SegmentDefinition, sample_size: int,
                      deadline: float | None = None) -> PreviewResult:
        """Who would be a member if ``draft`` went live now, and who would
        join or leave compared with the current members of the same id: the
        engine applies ``SegmentChanged`` to a copy of each contact's state,
        rebuilt over its retained history as a go-live would, with a catalog
        holding the draft as live. Nothing is written or emitted. Raises
        ``TimeoutError`` once ``time.monotonic()`` passes ``deadline``.
        Yields to the event loop every ``_PREVIEW_SLICE`` seconds of work."""
        result = PreviewResult()
        retention = self._retention_us()
        live = draft.model_copy(update={"status": "live"})
        with_draft: dict[int, Catalog] = {}
        # A draft can take ~1 ms per contact (a maximal formula).
        pacer = _Pacer(deadline, every=16)
        for partition in sorted(self.held_partitions()):
            catalog = _with_draft(with_draft, self._catalog(partition), live)
            accounts = self._accounts(partition)
            now = self._now(partition)
            now_us = to_us(now)
            if retention is not None:
                since = from_us(now_us - retention)
                result.history_since = min(result.history_since or since, since)
            need = rebuild_needs(catalog, live.id)
            if need is not None and need.features:
                result.reads_all_history = True
            idx, limits = catalog.index, catalog.limits
            inp = SegmentChanged(live.id)
            async for chunk in self._chunks(partition):
                archived = (self._archived(partition, chunk[0][0], chunk[-1][0], now)
                            if need is not None else None)
                for key, raw in chunk:
                    result.scanned += 1
                    await pacer.tick()
                    state = ContactState.from_bytes(raw)
                    was = state.is_member(live.id)
                    if archived is not None and need is not None:
                        state = rebuild_history(state, idx, limits, need,
                                                archived.get(key, ()), now_us)
                    transition = apply(state, inp, catalog, now, accounts)
                    member = transition.state is not None and transition.state.is_member(live.id)
                    if member:
                        result.size += 1
                        if len(result.sample) < sample_size:
                            result.sample.append(key)
                    if member and not was:
                        result.joins += 1
                        if len(result.join_sample) < sample_size:
                            result.join_sample.append(key)
                    elif was and not member:
                        result.leaves += 1
                        if len(result.leave_sample) < sample_size:
                            result.leave_sample.append(key)
        return result

    async def engagement(self, segment_id: str, days: int,
                         deadline: float | None = None) -> EngagementResult:
        """Interactions of the segment's current members per UTC day and
        type over the last ``days`` days, from the retained history (what
        the members did: opens, clicks, visits...). Nothing is written."""
        result = EngagementResult()
        pacer = _Pacer(deadline)
        for partition in sorted(self.held_partitions()):
            now = self._now(partition)
            since = to_us(now) - days * 86_400_000_000
            async for chunk in self._chunks(partition):
                members = [key for key, raw in chunk
                           if ContactState.from_bytes(raw).is_member(segment_id)]
                await pacer.tick()
                if not members:
                    continue
                result.members += len(members)
                archived = self._archived(partition, members[0], members[-1], now) or {}
                for key in members:
                    for at_us, _, event_type, _ in archived.get(key, ()):
                        if at_us >= since:
                            slot = (from_us(at_us).date().isoformat(), event_type)
                            result.counts[slot] = result.counts.get(slot, 0) + 1
        return result

    async def backtest(self, draft: SegmentDefinition, points: list[datetime],
                       sample_size: int, deadline: float | None = None) -> BacktestResult:
        """The draft's members at each of ``points`` (time order), computed
        from the retained history: each contact's kept history and running
        features rebuilt over its interactions up to that instant, then the
        draft evaluated there. Attributes, account and consent are today's
        (no history of them is kept), and so are the memberships of segments
        the draft references. Nothing is written. ``sample``: members at the
        last point."""
        result = BacktestResult(sizes=[0] * len(points))
        live = draft.model_copy(update={"status": "live"})
        with_draft: dict[int, Catalog] = {}
        inp = SegmentChanged(live.id)
        stamps = [to_us(p) for p in points]
        pacer = _Pacer(deadline)
        for partition in sorted(self.held_partitions()):
            catalog = _with_draft(with_draft, self._catalog(partition), live)
            need = rebuild_needs(catalog, live.id) or Rebuild(frozenset(), ())
            idx, limits = catalog.index, catalog.limits
            accounts = self._accounts(partition)
            async for chunk in self._chunks(partition):
                archived = self._archived(partition, chunk[0][0], chunk[-1][0],
                                          self._now(partition)) or {}
                for key, raw in chunk:
                    result.scanned += 1
                    await pacer.tick()
                    current = ContactState.from_bytes(raw)
                    # the past starts with no kept history, features, timers
                    # or membership of the draft
                    blank = ContactState(
                        current.contact_id, current.attrs, current.account_id, current.consent,
                        members={k: v for k, v in current.members.items() if k != live.id},
                        static=current.static)
                    events = archived.get(key, [])
                    member, seen, until = False, -1, -1  # until: the answer holds before it
                    for i, (at, at_us) in enumerate(zip(points, stamps, strict=True)):
                        upto = bisect_right(events, at_us, key=_EVENT_TIME)
                        if upto != seen or (until is not None and at_us >= until):
                            # no new event and not due: the last answer still holds
                            state = rebuild_history(blank, idx, limits, need, events[:upto],
                                                    at_us)
                            after = apply(state, inp, catalog, at, accounts).state
                            member = after is not None and after.is_member(live.id)
                            until = after.due.get(live.id) if after is not None else None
                            seen = upto
                        if member:
                            result.sizes[i] += 1
                            if i == len(points) - 1 and len(result.sample) < sample_size:
                                result.sample.append(key)
        return result

    # -- metrics -----------------------------------------------------------------------

    async def segment_sizes(self, ttl: float) -> dict[str, int]:
        """Members per segment over the held partitions: one scan for all
        segments (yielding to the event loop between chunks), cached for
        ``ttl`` seconds so scrapes stay cheap."""
        cached = self._sizes_cache
        if cached is not None and time.monotonic() - cached[0] < ttl:
            return cached[1]
        sizes = dict.fromkeys(self.definitions(), 0)
        for partition in self.held_partitions():
            async for _, raw in self._states(partition):
                for segment_id in ContactState.from_bytes(raw).memberships():
                    sizes[segment_id] = sizes.get(segment_id, 0) + 1
        self._sizes_cache = (time.monotonic(), sizes)
        return sizes

    def cached_sizes(self) -> dict[str, int]:
        """The last ``segment_sizes`` result (what /metrics reports)."""
        return self._sizes_cache[1] if self._sizes_cache is not None else {}

    def clock_of(self, partition: int) -> dict[str, Any]:
        """A held partition's clock: mode, event clock (ISO or None) and the
        ``now`` its evaluations use (explain shows what it was computed at)."""
        clock = self._event_clock(partition)
        return {"clock": self.clock_mode,
                "event_clock": clock.isoformat() if clock is not None else None,
                "now": self._now(partition).isoformat()}

    def partition_status(self, ends: Mapping[int, int] | None = None
                         ) -> dict[int, dict[str, Any]]:
        """Per held partition: the clock (mode, event clock, the ``now`` it
        evaluates at, how far the event clock trails the wall clock) and the
        input log (offset applied, offset committed, end offset, inputs not
        yet applied); go-live backfills still running and batches whose
        outputs are not yet acknowledged. ``ends``: the log's end offsets."""
        wall = datetime.now(UTC)
        found: dict[int, dict[str, Any]] = {}
        for partition in sorted(self.held_partitions()):
            clock = self._event_clock(partition)
            applied, committed = self._offsets(partition)
            backfills, staged, settled = self._settling(partition)
            end = ends.get(partition) if ends is not None else None
            lag = (0.0 if self.clock_mode == "wall" else
                   (wall - clock).total_seconds() if clock is not None else None)
            found[partition] = {
                **self.clock_of(partition),
                "clock_lag_seconds": lag,
                "applied_offset": applied,
                "committed_offset": committed,
                "end_offset": end,
                "input_lag": (max(0, end - (applied + 1 if applied is not None else 0))
                              if end is not None else None),
                "backfills_running": backfills,
                "batches_staged": staged,
                "batches_settled": settled,
            }
        return found

    def standby_lag(self) -> dict[int, int]:
        """Per standby copy kept here (``SEGMENTFLOW_STANDBY_REPLICAS``): the
        changelog records it has not applied yet."""
        return dict(self._standby_lag())

    def metrics_snapshot(self) -> dict[str, Any]:
        held = self.held_partitions()
        now_us = to_us(self._now(min(held))) if held else 0
        due_entries, earliest = self._due()
        golive: dict[str, tuple[int, float]] = {}
        for segment_id in self.definitions():
            jobs = [self._backfill(p, segment_id) for p in held]
            scanned = sum(j.scanned for j in jobs if j is not None)
            complete = sum(1 for j in jobs if j is not None and j.complete)
            golive[segment_id] = (scanned, complete / len(held) if held else 0.0)
        return {
            "partitions": len(held),
            "sizes": self.cached_sizes(),
            "due_entries": due_entries,
            "tick_lag": max(0.0, (now_us - min(earliest)) / 1e6) if earliest else 0.0,
            "golive": golive,
            "refused": len(self.refusals()),
            "consumer_lag": self._consumer_lag(),
            "standby_lag": self._standby_lag(),
            "clocks": {p: self._event_clock(p) for p in held},
            "clock_mode": self.clock_mode,
        }
