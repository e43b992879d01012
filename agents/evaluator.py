"""The evaluator agent: the only writer of contact state.

It consumes the single ordered log (``evaluator-input``), one stream per
partition. Each message is a contact input (evaluated with the pure engine's
``apply``) or a control command broadcast to every partition (segment
defined or deleted, account changed, clock tick) or sent to itself (the next
chunk of a backfill). Outputs: membership changes and the compacted
memberships snapshot.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import faust

from agents.buffered_tables import BufferedTable, WriteBatch
from agents.codec import decode_envelope, encode_envelope
from agents.output import (
    OutputProducer,
    confirm_changelog_or_exit,
    confirm_or_exit,
    flush_faust_producer,
)
from agents.partition_clock import PartitionClock
from agents.partition_scan import keys_in_chunk, scan_partition
from agents.partition_tables import AccountIndex, DueIndex, PartitionAccounts, PartitionCatalogs
from agents.partitioning import partition_for
from agents.refusals import SegmentRefusals
from agents.state_reads import EvaluatorReads
from app.faust_app import Tables, Topics
from app.metrics import Metrics
from app.settings import Settings
from engine import (
    AccountChanged,
    Catalog,
    ContactState,
    CycleError,
    SegmentChanged,
    Tick,
    apply,
)
from engine.timeutil import to_us
from models.changes import MembershipChange
from models.inputs import (
    AccountDelete,
    AccountUpsert,
)
from models.segments import SegmentDefinition, SegmentDelete
from runtime.outputs import change_record_as, snapshot_record
from runtime.processor import StateTooLarge
from runtime.processor import contact_input as _contact_input
from runtime.processor import event_time as _event_time
from runtime.views import Backfill

__all__ = ["EvaluatorHandle", "StateTooLarge", "register_evaluator"]

log = logging.getLogger(__name__)


class Evaluator:
    """Per-worker evaluator logic; the Faust agent only feeds it events."""

    def __init__(self, app: faust.App, topics: Topics, tables: Tables, settings: Settings,
                 metrics: Metrics | None = None) -> None:
        self.app, self.topics, self.settings = app, topics, settings
        self.metrics = metrics or Metrics()
        self.emitted = 0  # changes published so far (latency is observed when it moves)
        self.event_time: datetime | None = None  # of the contact input being handled
        self.tables = tables
        self.batch = WriteBatch()
        self.pending: list[Any] = []  # output futures of the current batch
        self.output = OutputProducer(settings)
        self.changes_topic = topics.membership_changes.get_topic_name()
        self.snapshot_topic = topics.memberships.get_topic_name()
        self.raw_contacts = tables.contacts
        self.contacts = BufferedTable(tables.contacts, self.batch)
        self.accounts = BufferedTable(tables.accounts, self.batch)
        self.account_cache: dict[int, dict[str, Any]] = {}  # see PartitionAccounts
        self.backfills = BufferedTable(tables.backfills, self.batch)
        self.catalogs = PartitionCatalogs(
            BufferedTable(tables.segments, self.batch), settings.limits,
            on_quarantine=lambda *_: self.metrics.segments_quarantined.inc())
        self.refusals = SegmentRefusals(BufferedTable(tables.segments, self.batch))
        self.account_index = AccountIndex(BufferedTable(tables.account_contacts, self.batch))
        self.due = DueIndex(BufferedTable(tables.due, self.batch), settings.partitions)
        self.clock = PartitionClock(settings.clock, BufferedTable(tables.clock, self.batch))

    def forget_caches(self) -> None:
        """After a rebalance the tables are the truth; drop derived caches."""
        self.catalogs.clear()
        self.due.clear()
        self.clock.forget()
        self.account_cache.clear()

    # -- outputs ---------------------------------------------------------------

    async def publish(self, changes: list[MembershipChange], partition: int) -> None:
        """Send the changes now and remember the delivery futures; the agent
        waits for all of them before any state of the batch reaches the tables.

        Not Faust's ``Topic.send``: inside an agent it attaches records to the
        current event and publishes them when the event is acked, after the
        state write — a kill -9 in between left the new state in RocksDB and
        lost the changes (the crash test caught it).

        Partitions are given, not computed per record: a change goes to the
        contact's partition (same key, same partition count as the input
        log), a snapshot record to its key's partition.
        """
        if not changes:
            return
        self.emitted += len(changes)
        self.metrics.count_changes(changes)
        send = self.output.send
        partitions = self.settings.partitions
        fmt, prefix = self.settings.changes_format, self.settings.topic_prefix
        for change in changes:
            key, value, headers = change_record_as(change, fmt, prefix)
            self.pending.append(await send(self.changes_topic, key, value, partition,
                                           headers=headers or None))
            s_key, s_value, s_partition = snapshot_record(change, partitions)
            self.pending.append(await send(self.snapshot_topic, s_key, s_value, s_partition))

    async def confirm_outputs(self) -> None:
        """Wait until the broker acknowledged every output of the batch (the
        process exits if one failed: see ``confirm_or_exit``)."""
        await confirm_or_exit(self.output, self.pending)

    # -- contacts --------------------------------------------------------------

    async def apply_to_contact(
        self, partition: int, contact_id: str, inp: Any, now: datetime, *, was_due: bool = False,
        stored: bytes | None = None,
    ) -> None:
        """``stored``: the contact's state as a scan just read it from the
        store (backfills), unless the batch has written a newer one."""
        raw = stored if stored is not None and contact_id not in self.contacts.overlay else (
            self.contacts.get_in(partition, contact_id))
        state = ContactState.from_bytes(raw) if raw is not None else None
        if state is None and isinstance(inp, Tick | SegmentChanged | AccountChanged):
            return  # erased meanwhile: nothing to re-evaluate
        accounts = PartitionAccounts(self.accounts, partition,
                                     self.account_cache.setdefault(partition, {}))
        transition = apply(state, inp, self.catalogs.get(partition), now, accounts)
        new = transition.state
        encoded = new.to_bytes() if new is not None else None
        # Only inputs that carry data are refused: a re-evaluation (tick,
        # backfill, account change) adds at most a membership entry, which the
        # headroom below the producer's 1 MiB limit absorbs.
        if (encoded is not None and len(encoded) > self.settings.max_contact_state_bytes
                and not isinstance(inp, Tick | SegmentChanged | AccountChanged)):
            # Refused before anything is published: the input is dead-lettered
            # and the contact stays exactly as it was.
            raise StateTooLarge(
                f"contact {contact_id!r} would grow to {len(encoded):,} bytes of state "
                f"(SEGMENTFLOW_MAX_CONTACT_STATE_BYTES: "
                f"{self.settings.max_contact_state_bytes:,})")
        # Changes are acked before the state is written (see handle_batch): a
        # crash in between replays the input against the old state and
        # re-emits the same sequence numbers, which consumers drop.
        await self.publish(transition.changes, partition)
        old_account = state.account_id if state is not None else None
        old_due = None if was_due or state is None or state.next_due is None else to_us(
            state.next_due)
        if new is None or encoded is None:
            self.contacts.pop(contact_id, None)
            self.account_index.move(partition, contact_id, old_account, None)
            self.due.set(partition, contact_id, old_due, None)
            return
        if encoded != raw:  # most re-evaluations change nothing: no write
            self.contacts[contact_id] = encoded
        self.account_index.move(partition, contact_id, old_account, new.account_id)
        next_due = transition.next_due
        self.due.set(partition, contact_id, old_due, to_us(next_due) if next_due else None)

    async def wake_due(self, partition: int, now: datetime) -> None:
        for contact_id in self.due.pop_due(partition, to_us(now), self.settings.due_batch):
            await self.apply_to_contact(partition, contact_id, Tick(), now, was_due=True)

    # -- segments and backfills --------------------------------------------------

    def backfill_progress(self, partition: int, segment_id: str) -> Backfill | None:
        raw = self.backfills.get(f"{partition}:{segment_id}")
        return Backfill.from_bytes(raw) if raw is not None else None

    async def run_backfill_chunk(self, partition: int, job: Backfill, now: datetime) -> None:
        """Re-evaluate the next chunk of this partition's contacts for the
        segment, record progress, and queue the continuation behind any live
        traffic already waiting in the log."""
        chunk = scan_partition(self.raw_contacts, partition, self.settings.partitions,
                               job.after, self.settings.backfill_chunk)
        complete = len(chunk) < self.settings.backfill_chunk
        # Contacts created earlier in this batch are still in the write-behind
        # overlay, not in the store the scan reads: take those in this chunk's
        # key range too, or a go-live right behind their first input misses them.
        # The range is in the store's key order, as the scan's (not str order).
        created = [
            k for k in self.contacts.overlay
            if partition_for(k, self.settings.partitions) == partition
            and self.contacts.get(k) is not None
        ]
        contact_ids = keys_in_chunk([contact_id for contact_id, _ in chunk], created,
                                    job.after, complete)
        previous = None
        stored = dict(chunk)
        for contact_id in contact_ids:
            await self.apply_to_contact(
                partition, contact_id, SegmentChanged(job.segment_id, previous), now,
                stored=stored.get(contact_id))
        job.scanned += len(contact_ids)
        if contact_ids:
            job.after = contact_ids[-1]
        job.complete = complete
        self.backfills[f"{partition}:{job.segment_id}"] = job.to_bytes()
        if not job.complete:
            self.pending.append(await self.topics.evaluator_input.send(
                key=job.segment_id.encode(),
                value=encode_envelope("backfill", {"segment_id": job.segment_id,
                                                   "version": job.version}),
                partition=partition,
                force=True,
            ))

    async def on_segment(self, partition: int, definition: SegmentDefinition,
                         now: datetime) -> None:
        try:
            self.catalogs.put(partition, definition)
        except Exception as exc:  # refused: the previous version stays in force
            self.refusals.record(partition, definition, exc)
            raise
        self.refusals.clear(partition, definition.id)
        await self.run_backfill_chunk(partition, Backfill(definition.id, definition.version), now)

    async def on_segment_delete(self, partition: int, segment_id: str, now: datetime) -> None:
        self.catalogs.remove(partition, segment_id)
        self.refusals.clear(partition, segment_id)
        await self.run_backfill_chunk(partition, Backfill(segment_id, 0), now)

    async def on_backfill(self, partition: int, body: dict[str, Any], now: datetime) -> None:
        job = self.backfill_progress(partition, body["segment_id"])
        # A newer definition restarted the backfill: this continuation is stale.
        if job is None or job.complete or job.version != body["version"]:
            return
        await self.run_backfill_chunk(partition, job, now)

    # -- accounts ------------------------------------------------------------------

    async def on_account(self, partition: int, body: dict[str, Any], now: datetime) -> None:
        accounts = PartitionAccounts(self.accounts, partition,
                                     self.account_cache.setdefault(partition, {}))
        if body.get("op") == "delete":
            account_id = AccountDelete.model_validate(body).account_id
            accounts.delete(account_id)
        else:
            upsert = AccountUpsert.model_validate(body)
            account_id = upsert.account_id
            accounts.upsert(account_id, dict(upsert.attributes), upsert.mode == "merge")
        for contact_id in self.account_index.contacts(partition, account_id):
            await self.apply_to_contact(partition, contact_id, AccountChanged(account_id), now)

    # -- dispatch ------------------------------------------------------------------

    async def handle(self, partition: int, kind: str, body: dict[str, Any]) -> None:
        if kind == "tick":
            if self.clock.mode == "wall":
                await self.wake_due(partition, self.clock.now(partition))
            return
        if kind in ("contact", "interaction", "static_edit"):
            inp = _contact_input(kind, body)
            self.event_time = _event_time(inp)
            now = self.clock.now(partition, self.event_time)
            await self.apply_to_contact(partition, inp.contact_id, inp, now)
        elif kind == "clock":  # {"to": time}: the event clock forward (as runtime/processor.py)
            to = datetime.fromisoformat(str(body["to"]).replace("Z", "+00:00"))
            if to.tzinfo is None:
                raise ValueError("clock advance needs a time with a UTC offset")
            now = self.clock.now(partition, to)
        else:
            now = self.clock.now(partition)
            if kind == "segment":
                await self.on_segment(partition, SegmentDefinition.model_validate(body), now)
            elif kind == "segment_delete":
                segment_id = SegmentDelete.model_validate(body).segment_id
                await self.on_segment_delete(partition, segment_id, now)
            elif kind == "backfill":
                await self.on_backfill(partition, body, now)
            elif kind == "account":
                await self.on_account(partition, body, now)
            else:
                raise ValueError(f"unknown evaluator command {kind!r}")
        if self.clock.mode == "event":
            # Replays: time moves with the events, and so do due contacts.
            await self.wake_due(partition, now)


class EvaluatorHandle(EvaluatorReads):
    """What the web views may read of the evaluator (never write); the read
    methods for the API and metrics are in ``agents.state_reads``."""

    def __init__(self, app: faust.App, evaluator: Evaluator) -> None:
        self._app, self._evaluator = app, evaluator

    def held_partitions(self) -> set[int]:
        """Evaluator partitions held here and readable: none while a rebalance
        or table recovery is under way (Faust suspends the streams from the
        revocation until recovery ends). Reading then would rebuild the
        evaluator's caches (catalogs, due heaps) from half-recovered tables,
        and the evaluator would go on using them."""
        app = self._app
        if app.rebalancing or not app.flow_control.is_active():
            return set()
        return {tp.partition for tp in app.consumer.assignment()
                if tp.topic == self._evaluator.topics.evaluator_input.get_topic_name()}

    def segment_status(self, segment_id: str) -> dict[int, dict[str, Any]]:
        """Per partition held here: applied version (0 = unknown/deleted),
        backfill progress, why its stored definition was left out of the
        catalog if it was (``quarantined``, else None), and the newest
        definition the partition refused (``refused``: version and reason)."""
        status: dict[int, dict[str, Any]] = {}
        catalogs = self._evaluator.catalogs
        for partition in self.held_partitions():
            definition = catalogs.get(partition).get(segment_id)
            job = self._evaluator.backfill_progress(partition, segment_id)
            status[partition] = {
                "version": definition.version if definition is not None else 0,
                "backfill_version": job.version if job else None,
                "contacts_scanned": job.scanned if job else 0,
                "backfill_complete": job.complete if job else False,
                "quarantined": catalogs.quarantined(partition).get(segment_id),
                "refused": self._evaluator.refusals.get(partition, segment_id),
            }
        return status

    def segment_versions(self, segment_id: str) -> dict[int, int]:
        return {p: s["version"] for p, s in self.segment_status(segment_id).items()}

    # -- the read hooks of EvaluatorReads, over the Faust tables ------------------

    @property
    def contacts_changelog(self) -> str:
        return str(self._evaluator.tables.contacts.changelog_topic.get_topic_name())

    @property
    def partitions(self) -> int:
        return self._evaluator.settings.partitions

    def _catalog(self, partition: int) -> Catalog:
        return self._evaluator.catalogs.get(partition)

    def _refusals(self, partition: int) -> dict[str, dict[str, Any]]:
        return self._evaluator.refusals.of_partition(partition)

    def _contact_raw(self, partition: int, contact_id: str) -> bytes | None:
        raw: bytes | None = self._evaluator.contacts.get(contact_id)
        return raw

    def _scan_contacts(self, partition: int, after: str | None,
                       limit: int) -> list[tuple[str, bytes]]:
        return scan_partition(self._evaluator.raw_contacts, partition,
                              self._evaluator.settings.partitions, after, limit)

    def _accounts(self, partition: int) -> PartitionAccounts:
        return PartitionAccounts(self._evaluator.accounts, partition)

    def _now(self, partition: int) -> datetime:
        return self._evaluator.clock.now(partition)

    @property
    def clock_mode(self) -> str:
        return self._evaluator.clock.mode

    def _event_clock(self, partition: int) -> datetime | None:
        clock = self._evaluator.clock
        return clock._load(partition) if clock.mode == "event" else None

    def _offsets(self, partition: int) -> tuple[int | None, int | None]:
        return None, None  # Faust keeps them; the batch evaluator reports them

    def _settling(self, partition: int) -> tuple[int | None, int | None, int | None]:
        return None, None, None  # backfills are records on the log itself here

    def _backfill(self, partition: int, segment_id: str) -> Backfill | None:
        return self._evaluator.backfill_progress(partition, segment_id)

    def _due(self) -> tuple[int, list[int]]:
        due = self._evaluator.due
        held = self.held_partitions()
        return len(due), [e for p in held if (e := due.earliest(p)) is not None]

    def _consumer_lag(self) -> dict[int, int]:
        consumer = self._app.consumer
        topic = self._evaluator.topics.evaluator_input.get_topic_name()
        lag: dict[int, int] = {}
        try:
            # Faust keeps the last offset read (and committed) per partition;
            # aiokafka's highwater is the offset the next record will get.
            read, committed = consumer._read_offset, consumer._committed_offset
            for tp in consumer.assignment():
                if tp.topic != topic:
                    continue
                high = consumer.highwater(tp)
                if high is None:
                    continue
                position = read.get(tp)
                if position is None:
                    position = committed.get(tp)
                lag[tp.partition] = max(0, high - (position + 1 if position is not None else 0))
        except Exception:  # not obtainable right now (rebalancing): report none
            return {}
        return lag


def register_evaluator(
    app: faust.App, topics: Topics, tables: Tables, settings: Settings,
    metrics: Metrics | None = None,
) -> EvaluatorHandle:
    from agents.ingest import send_dead_letter

    metrics = metrics or Metrics()
    evaluator = Evaluator(app, topics, tables, settings, metrics)

    @app.on_partitions_revoked.connect
    async def _forget(*_: Any, **__: Any) -> None:
        evaluator.forget_caches()

    @app.on_before_shutdown.connect
    async def _stop_output(*_: Any, **__: Any) -> None:
        await evaluator.output.stop()

    @app.task
    async def _quiet_client_logs() -> None:
        # aiokafka logs every send at DEBUG; once the worker has configured
        # logging, keep those records from being built at all.
        logging.getLogger("aiokafka").setLevel(max(logging.INFO, log.getEffectiveLevel()))

    async def evaluate_one(event: faust.EventT) -> None:
        message = event.message
        evaluator.batch.event = event
        evaluator.event_time = None
        emitted = evaluator.emitted
        started = time.perf_counter()
        try:
            kind, body = decode_envelope(event.value)
            await evaluator.handle(message.partition, kind, body)
        except CycleError as exc:
            # Broadcast: every partition refuses it; report it once.
            if message.partition == 0:
                await send_dead_letter(topics, settings, message, event.value,
                                       f"segment refused: {exc}", wait=True, metrics=metrics)
        except Exception as exc:  # never let one input stop the partition
            log.exception("evaluation failed at %s[%s]@%s", message.topic,
                          message.partition, message.offset)
            await send_dead_letter(topics, settings, message, event.value,
                                   f"evaluation failed: {type(exc).__name__}: {exc}",
                                   wait=True, metrics=metrics)
        metrics.evaluation_seconds.observe(time.perf_counter() - started)
        if evaluator.emitted != emitted:
            event_time = evaluator.event_time
            metrics.observe_latency(event_time.timestamp() if event_time else None,
                                    message.timestamp)

    async def evaluate(stream: faust.StreamT) -> None:
        # Batches, so that one broker round trip confirms the outputs of many
        # inputs before their state is written (see agents/buffered_tables.py).
        # take_events acks a batch's events in order once it is processed.
        async for events in stream.take_events(settings.batch_max, settings.batch_within):
            for event in events:
                await evaluate_one(event)
            if evaluator.pending:
                await evaluator.confirm_outputs()
            if evaluator.batch.writes:
                changelog = evaluator.batch.apply()
                # The batch's changelog records must be acked by the broker
                # before take_events acks the batch: otherwise a commit can
                # cover inputs whose state changes only this (killed)
                # worker's RocksDB holds, and the partition's next owner
                # restores an older state and never replays them (the
                # two-worker kill test caught it). The flush only sends them
                # without lingering; the guarantee is each record's own
                # future (the flush can return before the last records are
                # even in aiokafka, see ChangelogTrackingTable).
                await flush_faust_producer(app.producer)
                await confirm_changelog_or_exit(changelog)

    app.agent(topics.evaluator_input, name="evaluator")(evaluate)
    handle = EvaluatorHandle(app, evaluator)
    metrics.watch(handle)
    return handle
