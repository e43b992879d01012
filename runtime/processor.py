"""One partition's evaluation, batch by batch, over a transaction.

The only writer of a partition's state. ``process(inputs)`` opens a
transaction on the partition's :class:`~runtime.staged.StagedStore`,
applies the inputs in log order with the pure engine, wakes due contacts,
advances running backfills by one chunk each, prepares, and stages the
batch: the changes to publish and one changelog record per changed key.
Nothing here talks to Kafka or Faust; the commit protocol (agents) sends
the batch and commits it once acknowledged, and a broker-free driver
(:mod:`runtime.driver`) does the same in tests.

Inputs are envelopes already decoded to ``(kind, body)``: contact inputs
(``contact``, ``interaction``, ``static_edit``) and the commands every
partition receives (``segment``, ``segment_delete``, ``account``, ``clock``).
Backfills continue inside later batches (no records sent to itself) and
due contacts are woken here, from the wall clock or the partition's event
time (no broadcast ticks): ``tick`` and ``backfill`` envelopes written by
older versions are accepted and ignored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from engine import (
    AccountChanged,
    CompileError,
    ContactState,
    CycleError,
    Rebuild,
    SegmentChanged,
    Tick,
    apply,
    definition_probe,
    is_duplicate,
    rebuild_history,
    rebuild_needs,
)
from engine.timeutil import from_us, to_us
from models.changes import MembershipChange
from models.inputs import (
    AccountDelete,
    AccountUpsert,
    ContactDelete,
    ContactUpsert,
    Interaction,
    StaticEdit,
)
from models.segments import SegmentDefinition, SegmentDelete
from runtime.archive import DAY_US, Archive
from runtime.catalogs import CatalogCache, short_reason
from runtime.fields import ACCOUNT, CONTACT, FieldCatalogue
from runtime.keys import Keyspace, contact_key, decode_offset, encode_offset, stored_key
from runtime.staged import StagedStore
from runtime.state_cache import StateCache
from runtime.transaction import PartitionTransaction
from runtime.types import ChangelogRecord
from runtime.views import AccountIndex, Accounts, Backfill, DueQueue, EventClock, first_items

__all__ = [
    "INPUT_OFFSET_KEY", "Batch", "PartitionProcessor", "ProcessorConfig", "Refusal",
    "StateTooLarge", "contact_input", "event_time", "merged_changelog",
]

log = logging.getLogger(__name__)

_REFUSED = b"refused\x00"  # META prefix: segment id -> newest refused definition
#: META key: offset of the last input log record the state includes. The
#: batch's last changelog record, so a restored store that holds it holds
#: the whole batch, and a replay after a crash skips what it already applied.
INPUT_OFFSET_KEY = b"input-offset"
_CONTACT_KINDS = frozenset(("contact", "interaction", "static_edit"))
_LEGACY_KINDS = frozenset(("tick", "backfill"))


class StateTooLarge(ValueError):
    """An input would grow a contact's state past the record size limit."""


@dataclass(frozen=True, slots=True)
class ProcessorConfig:
    partitions: int
    clock: Literal["wall", "event"] = "wall"
    backfill_chunk: int = 2000
    due_batch: int = 20000
    max_contact_state_bytes: int = 900_000
    #: decoded contact states kept across batches, per partition, in bytes of
    #: their encoding (runtime/state_cache.py)
    state_cache_bytes: int = 1 << 18
    #: interactions kept for segments defined later (days before "now")
    history_retention_days: int = 400
    #: a pass over the archive dropping what the retention no longer covers
    #: starts at most this often (wall seconds), then runs a chunk per batch
    archive_sweep_seconds: float = 6 * 3600
    archive_sweep_chunk: int = 5000

    @property
    def retention_us(self) -> int:
        return self.history_retention_days * DAY_US


@dataclass(frozen=True, slots=True)
class Refusal:
    """An input that changed nothing, and why (it goes to dead letters)."""

    index: int  # position in the batch
    reason: str
    report: bool = True  # False: a broadcast that partition 0 reports


@dataclass(slots=True)
class Batch:
    """A processed, staged batch: what to send before it may be committed."""

    seq: int  # the staged batch number (StagedStore.commit)
    changes: list[MembershipChange] = field(default_factory=list)
    changelog: Sequence[ChangelogRecord] = ()
    refused: list[Refusal] = field(default_factory=list)
    emitted_by: list[int] = field(default_factory=list)  # inputs that changed membership
    #: per-input change boundaries, parallel to ``emitted_by``: the changes of
    #: input ``emitted_by[i]`` end (exclusive) at ``changes[emitted_until[i]]``
    #: and start where the previous input's end; changes after the last
    #: boundary come from no input (wall-clock timers, backfill chunks)
    emitted_until: list[int] = field(default_factory=list)

    def change_sources(self) -> list[tuple[int | None, int, int]]:
        """``(input index or None, start, end)`` for every run of changes, in
        order: which input of the batch caused ``changes[start:end]``."""
        runs: list[tuple[int | None, int, int]] = []
        start = 0
        for index, end in zip(self.emitted_by, self.emitted_until, strict=True):
            runs.append((index, start, end))
            start = end
        if start < len(self.changes):
            runs.append((None, start, len(self.changes)))
        return runs


def contact_input(kind: str, body: dict[str, Any]) -> Any:
    """The engine input of a contact envelope (validated by its model)."""
    if kind == "contact":
        return ContactDelete(**body) if body.get("op") == "delete" else ContactUpsert(**body)
    if kind == "interaction":
        return Interaction.model_validate(body)
    return StaticEdit.model_validate(body)


def event_time(inp: Any) -> datetime | None:
    """The time an input carries (what moves the event clock)."""
    if isinstance(inp, Interaction):
        return inp.occurred_at
    return getattr(inp, "updated_at", None) or getattr(inp, "at", None)


def _marker_last(records: list[ChangelogRecord]) -> list[ChangelogRecord]:
    """The input offset record moved to the end of the batch's records."""
    marker = stored_key(Keyspace.META, INPUT_OFFSET_KEY)
    rest = [r for r in records if r[0] != marker]
    return rest if len(rest) == len(records) else [*rest, (marker, dict(records)[marker])]


def merged_changelog(changelogs: Iterable[Sequence[ChangelogRecord]]) -> list[ChangelogRecord]:
    """Consecutive batches' changelog records as one set, for batches
    committed together: each key's latest value, the input offset record
    (the newest batch's) last."""
    merged: dict[bytes, bytes | None] = {}
    for records in changelogs:
        merged.update(records)
    return _marker_last(list(merged.items()))


def _same_state(old: ContactState, new: ContactState) -> bool:
    """``apply`` copies a container before its first write (``clone``), so
    the same containers mean the same state (``static`` is always copied)."""
    return (new.members is old.members and new.due is old.due
            and new.features is old.features and new.history is old.history
            and new.seen is old.seen and new.attrs is old.attrs
            and new.consent is old.consent and new.account_id == old.account_id
            and new.static == old.static)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PartitionProcessor:
    """Evaluates one assigned partition; caches live as long as the assignment."""

    def __init__(self, store: StagedStore, config: ProcessorConfig, catalogs: CatalogCache,
                 wall: Callable[[], datetime] = _utc_now) -> None:
        self.store, self.config, self.catalogs, self.wall = store, config, catalogs, wall
        self.partition = store.partition
        self._accounts_cache: dict[str, Any] = {}
        self._earliest_due: list[int | None] = [DueQueue._UNKNOWN]
        #: a contact's next input skips the read and the decoding (dropped
        #: whenever a batch's writes are lost)
        self._decoded = StateCache(config.state_cache_bytes)
        txn = store.begin()
        try:
            stored = [(k.decode(), v) for k, v in txn.scan_range(Keyspace.SEGMENTS)]
            self.catalog, self.quarantined = catalogs.build(stored)
            self.refused: dict[str, dict[str, Any]] = {
                k[len(_REFUSED):].decode(): orjson.loads(v)
                for k, v in txn.scan_prefix(Keyspace.META, _REFUSED)}
            self.backfills = {
                job.segment_id: job for job in
                (Backfill.from_bytes(v) for _, v in txn.scan_range(Keyspace.BACKFILLS))
                if not job.complete}
            self._history_jobs: list[tuple[Backfill, Rebuild]] = []
            self._sweep_cursor: bytes | None = None  # None: no pass running
            self._next_sweep = 0.0  # time.monotonic() of the next pass
            self._refresh_history_jobs()
            self.event_clock = EventClock.load(txn)
            self.fields = FieldCatalogue.load(txn)
            raw = txn.get(Keyspace.META, INPUT_OFFSET_KEY)
            #: offset of the last input the state includes (None: none yet)
            self.applied_offset: int | None = decode_offset(raw) if raw is not None else None
        finally:
            txn.close()

    # -- the batch ------------------------------------------------------------

    def process(self, inputs: Sequence[tuple[str, dict[str, Any]]],
                last_offset: int | None = None) -> Batch:
        """Apply ``inputs`` (log order) and the partition's timers; stage.
        ``last_offset``: the input log offset of the last input (recorded
        with the state, see :data:`INPUT_OFFSET_KEY`)."""
        txn = self.store.begin()
        self._txn = txn
        # the batch's views over its transaction, shared by every input
        self._accounts = Accounts(txn, self._accounts_cache)
        self._account_index = AccountIndex(txn)
        self._due = DueQueue(txn, self._earliest_due)
        self._archive = Archive(txn, self.config.retention_us)
        self._changes: list[MembershipChange] = []
        staged = False
        refused: list[Refusal] = []
        emitted_by: list[int] = []
        emitted_until: list[int] = []
        try:
            for index, (kind, body) in enumerate(inputs):
                before = len(self._changes)
                try:
                    self._handle(kind, body)
                except CycleError as exc:  # a broadcast: every partition refuses it
                    refused.append(Refusal(index, f"segment refused: {exc}",
                                           report=self.partition == 0))
                except Exception as exc:  # never let one input stop the partition
                    log.exception("evaluation failed on partition %d", self.partition)
                    refused.append(Refusal(
                        index, f"evaluation failed: {type(exc).__name__}: {exc}"))
                if len(self._changes) != before:
                    emitted_by.append(index)
                    emitted_until.append(len(self._changes))
            if self.config.clock == "wall":
                self._wake_due(self.wall())
            for job in list(self.backfills.values()):
                self._run_backfill_chunk(job, self._now(None))
            self._sweep_archive(self._now(None))
            self.fields.store(txn)
            if last_offset is not None:
                txn.put(Keyspace.META, INPUT_OFFSET_KEY, encode_offset(last_offset))
                self.applied_offset = last_offset
            records = _marker_last(txn.prepare())
            seq = self.store.stage(records)
            staged = True
            return Batch(seq, self._changes, records, refused, emitted_by, emitted_until)
        finally:
            txn.close()
            if staged:
                self._decoded.trim()
            else:  # its writes are gone: so are the states they cached
                self._decoded.clear()

    @property
    def state_cache_bytes(self) -> int:
        """The decoded-state cache's budget (resized: trimmed after the next batch)."""
        return self._decoded.budget_bytes

    @state_cache_bytes.setter
    def state_cache_bytes(self, budget_bytes: int) -> None:
        self._decoded.budget_bytes = budget_bytes

    def due_now(self) -> bool:
        """Whether an empty batch now would wake due contacts (wall clock;
        in event time only inputs move the clock). Cheap: the earliest due
        time is kept in memory (unknown until the first batch looks)."""
        if self.config.clock != "wall":
            return False
        earliest = self._earliest_due[0]
        return earliest is not None and (
            earliest == DueQueue._UNKNOWN or earliest <= to_us(self.wall()))

    def _handle(self, kind: str, body: dict[str, Any]) -> None:
        if kind in _CONTACT_KINDS:
            inp = contact_input(kind, body)
            now = self._now(event_time(inp))
            self._apply(inp.contact_id, inp, now, data=True)
            if type(inp) is Interaction:
                self.fields.observe_event(inp.type, inp.properties)
            elif type(inp) is ContactUpsert:
                self.fields.observe(CONTACT, inp.attributes)
        elif kind in _LEGACY_KINDS:
            return
        elif kind == "segment":
            self._on_segment(SegmentDefinition.model_validate(body))
        elif kind == "segment_delete":
            self._on_segment_delete(SegmentDelete.model_validate(body).segment_id)
        elif kind == "account":
            self._on_account(body)
        elif kind == "clock":
            self._on_clock(body)
        else:
            raise ValueError(f"unknown evaluator command {kind!r}")
        if self.config.clock == "event":
            # Replays: time moves with the events, and so do due contacts.
            self._wake_due(self._now(None))

    # -- time ----------------------------------------------------------------------

    def _now(self, event_time: datetime | None) -> datetime:
        if self.config.clock == "wall":
            return self.wall()
        if event_time is not None:
            at = to_us(event_time)
            if self.event_clock is None or at > self.event_clock:
                self.event_clock = at
                EventClock.store(self._txn, at)
        # Before any event time is known, fall back to the wall clock.
        return from_us(self.event_clock) if self.event_clock is not None else self.wall()

    def _on_clock(self, body: dict[str, Any]) -> None:
        """``{"to": time}``: move the event clock forward (replays that end
        in silence); never backwards, and a no-op on the wall clock."""
        to = datetime.fromisoformat(str(body["to"]).replace("Z", "+00:00"))
        if to.tzinfo is None:
            raise ValueError("clock advance needs a time with a UTC offset")
        if self.config.clock == "event":
            self._now(to)

    def _wake_due(self, now: datetime) -> None:
        due = DueQueue(self._txn, self._earliest_due)
        for contact_id in due.pop_due(to_us(now), self.config.due_batch):
            self._apply(contact_id, Tick(), now, was_due=True)

    # -- contacts ----------------------------------------------------------------------

    def _apply(self, contact_id: str, inp: Any, now: datetime, *, data: bool = False,
               was_due: bool = False, stored: bytes | None = None,
               rebuilt: ContactState | None = None, backfilling: str | None = None) -> None:
        """Apply one input to one contact. ``data``: the input carries data
        (refused if the state would outgrow the limit); re-evaluations add at
        most a membership entry, which the headroom below the producer's
        record limit absorbs. ``stored``: the state bytes a scan just read;
        ``rebuilt``: that state, already rebuilt over the retained history
        for ``backfilling`` (the segment whose backfill calls)."""
        txn = self._txn
        key = contact_key(contact_id)
        cached = self._decoded.get(contact_id) if stored is None else None
        if cached is not None:
            raw: bytes | None = cached[0]
        else:
            raw = stored if stored is not None else txn.get(Keyspace.CONTACTS, key)
        state: ContactState | None = rebuilt
        if raw is not None and state is None:
            state = cached[1] if cached is not None else self._decoded.decode(contact_id, raw)
        elif raw is None and not data:
            return  # erased meanwhile: nothing to re-evaluate
        as_stored = state if rebuilt is None else None  # the state its bytes hold
        if state is not None and self._history_jobs:
            state = self._first_touch(key, state, now, backfilling)
        fresh = type(inp) is Interaction and (
            state is None or not is_duplicate(state, inp.type, inp.event_id))
        transition = apply(state, inp, self.catalog, now, self._accounts)
        new = transition.state
        # Most re-evaluations (backfills, timers, account changes) change
        # nothing: no encoding, no write, no index or due-queue update.
        unchanged = (new is not None and state is not None and state is as_stored
                     and not was_due and _same_state(state, new))
        encoded = new.to_bytes() if new is not None and not unchanged else None
        if data and encoded is not None and len(encoded) > self.config.max_contact_state_bytes:
            # Refused before anything is published: the contact stays as it was.
            raise StateTooLarge(
                f"contact {contact_id!r} would grow to {len(encoded):,} bytes of state "
                f"(SEGMENTFLOW_MAX_CONTACT_STATE_BYTES: "
                f"{self.config.max_contact_state_bytes:,})")
        self._changes.extend(transition.changes)
        if fresh:
            self._archive.add(contact_id, to_us(inp.occurred_at), inp.event_id, inp.type,
                              inp.properties)
        elif type(inp) is ContactDelete:
            self._archive.erase(contact_id)
        if unchanged:
            return
        old_account = state.account_id if state is not None else None
        old_due = None if was_due or state is None else state.next_due_us()
        index, due = self._account_index, self._due
        if new is None or encoded is None:
            if raw is not None:
                txn.delete(Keyspace.CONTACTS, key)
            self._decoded.drop(contact_id)
            index.move(contact_id, old_account, None)
            due.set(contact_id, old_due, None)
            return
        if encoded != raw:  # most re-evaluations change nothing: no write
            txn.put(Keyspace.CONTACTS, key, encoded)
        self._decoded.put(contact_id, encoded, new)
        index.move(contact_id, old_account, new.account_id)
        due.set(contact_id, old_due, new.next_due_us())

    # -- segments and backfills ---------------------------------------------------------

    def _on_segment(self, definition: SegmentDefinition) -> None:
        encoded = definition.model_dump_json().encode()
        try:
            self.catalog = self.catalogs.put(self.catalog, definition, encoded)
        except Exception as exc:  # CycleError, CompileError, RecursionError
            self._refuse(definition, exc)
            raise
        self._txn.put(Keyspace.SEGMENTS, definition.id.encode(), encoded)
        self._release(definition.id)
        self._start_backfill(Backfill(definition.id, definition.version))

    def _on_segment_delete(self, segment_id: str) -> None:
        self.catalog = self.catalog.remove(segment_id)
        self._txn.delete(Keyspace.SEGMENTS, segment_id.encode())
        self._release(segment_id)
        self._start_backfill(Backfill(segment_id, 0))

    def _refuse(self, definition: SegmentDefinition, exc: Exception) -> None:
        """Record the refusal; the version in force stays as it was."""
        reason = str(exc) if isinstance(exc, CompileError | CycleError) else short_reason(exc)
        record = {"version": definition.version,
                  "reason": reason if len(reason) <= 300 else reason[:297] + "..."}
        self.refused[definition.id] = record
        self._txn.put(Keyspace.META, _REFUSED + definition.id.encode(), orjson.dumps(record))

    def _release(self, segment_id: str) -> None:
        """A newer version or a delete replaces a refused or quarantined one."""
        if self.refused.pop(segment_id, None) is not None:
            self._txn.delete(Keyspace.META, _REFUSED + segment_id.encode())
        if segment_id in self.quarantined:
            self.quarantined = {k: v for k, v in self.quarantined.items() if k != segment_id}

    def _start_backfill(self, job: Backfill) -> None:
        """Re-evaluate the partition's contacts for the segment: the first
        chunk now, the rest in the next batches (behind live traffic)."""
        self.backfills[job.segment_id] = job  # replaces an older version's job
        self._refresh_history_jobs()
        self._run_backfill_chunk(job, self._now(None))

    def _refresh_history_jobs(self) -> None:
        """Running backfills whose segment reads interaction history."""
        jobs = ((job, rebuild_needs(self.catalog, job.segment_id))
                for job in self.backfills.values())
        self._history_jobs = [(job, need) for job, need in jobs if need is not None]

    def _first_touch(self, key: bytes, state: ContactState, now: datetime,
                     backfilling: str | None) -> ContactState:
        """A contact a running history backfill has not reached yet is
        rebuilt over its retained history before anything else reads or
        folds into the segment's history (live inputs, timers, cascades)."""
        need: Rebuild | None = None
        for job, job_need in self._history_jobs:
            if job.segment_id != backfilling and (job.after is None or key > job.after.encode()):
                need = job_need if need is None else need | job_need
        if need is None:
            return state
        now_us = to_us(now)
        events = Archive(self._txn, self.config.retention_us).events(
            state.contact_id, now_us, need.event_types)
        return rebuild_history(state, self.catalog.index, self.catalog.limits, need, events,
                               now_us)

    def _sweep_archive(self, now: datetime) -> None:
        """One chunk of the periodic pass that deletes archived interactions
        older than the retention (those of contacts no go-live reads)."""
        if self._sweep_cursor is None:
            clock = time.monotonic()
            if clock < self._next_sweep:
                return
            self._next_sweep = clock + self.config.archive_sweep_seconds
            self._sweep_cursor = b""
        done = Archive(self._txn, self.config.retention_us).sweep(
            self._sweep_cursor or None, to_us(now), self.config.archive_sweep_chunk)
        self._sweep_cursor = done

    def _run_backfill_chunk(self, job: Backfill, now: datetime) -> None:
        after = job.after.encode() if job.after is not None else None
        chunk = first_items(self._txn, Keyspace.CONTACTS, after, self.config.backfill_chunk)
        changed = SegmentChanged(job.segment_id, None)
        need = rebuild_needs(self.catalog, job.segment_id) if chunk else None
        now_us = to_us(now)
        # Most contacts neither join the segment nor get a due instant from
        # it: probed on the stored state, they skip apply. Not while another
        # history backfill has still to reach them (it must see every
        # contact first).
        others = any(other is not job for other, _ in self._history_jobs)
        unchanged = None if others or not chunk else definition_probe(
            job.segment_id, self.catalog, now_us, self._accounts)
        decode = self._decoded.decode
        if need is None:
            for key, raw in chunk:
                contact_id = key.decode()
                if unchanged is not None:
                    state = decode(contact_id, raw)
                    if unchanged(state):
                        continue
                    self._decoded.put(contact_id, raw, state)  # apply decodes it once only
                self._apply(contact_id, changed, now, stored=raw)
        else:  # over the retained history: one archive scan for the chunk
            idx, limits = self.catalog.index, self.catalog.limits
            archived = Archive(self._txn, self.config.retention_us).events_of(
                chunk[0][0].decode(), chunk[-1][0].decode(), now_us, need.event_types)
            for key, raw in chunk:
                contact_id = key.decode()
                stored = decode(contact_id, raw)
                state = rebuild_history(stored, idx, limits, need, archived.get(contact_id, ()),
                                        now_us)
                # nothing to rebuild: probed like a profile segment's
                if unchanged is not None and state is stored and unchanged(stored):
                    continue
                self._apply(contact_id, changed, now, stored=raw, rebuilt=state,
                            backfilling=job.segment_id)
        job.scanned += len(chunk)
        if chunk:
            job.after = chunk[-1][0].decode()
        job.complete = len(chunk) < self.config.backfill_chunk
        self._txn.put(Keyspace.BACKFILLS, job.segment_id.encode(), job.to_bytes())
        if job.complete:
            self.backfills.pop(job.segment_id, None)
            self._refresh_history_jobs()

    # -- accounts --------------------------------------------------------------------------

    def _on_account(self, body: dict[str, Any]) -> None:
        accounts = Accounts(self._txn, self._accounts_cache)
        if body.get("op") == "delete":
            account_id = AccountDelete.model_validate(body).account_id
            accounts.delete(account_id)
        else:
            upsert = AccountUpsert.model_validate(body)
            account_id = upsert.account_id
            accounts.upsert(account_id, dict(upsert.attributes), upsert.mode == "merge")
            self.fields.observe(ACCOUNT, upsert.attributes)
        now = self._now(None)
        for contact_id in AccountIndex(self._txn).contacts(account_id):
            self._apply(contact_id, AccountChanged(account_id), now)

    # -- reads for the API -------------------------------------------------------------------

    def backfill_progress(self, segment_id: str) -> Backfill | None:
        txn: PartitionTransaction = self.store.begin()
        try:
            raw = txn.get(Keyspace.BACKFILLS, segment_id.encode())
        finally:
            txn.close()
        return Backfill.from_bytes(raw) if raw is not None else None
