"""The evaluator's batch loop on aiokafka, with pipelined commits.

Faust's per-event stream path tops out near 4-5k records/s consume ->
produce here, while a bare aiokafka ``getmany`` -> ``send`` pipe does
tens of thousands; so the hot path is this loop, owned by the worker (the
Faust app keeps the lifecycle, web server and light agents).

Per fetched batch and partition: decode the envelopes (a bad one is
dead-lettered), ``PartitionProcessor.process`` (one transaction, staged),
then send the changes, snapshot records and dead letters without waiting.
The acker settles batches in order, in groups (the batches queued while
it waited, at most one gathering per half ``commit_interval``):

1. the group's outputs are acknowledged by the broker; only then are its
   changelog records sent, one per changed key and partition, and they are
   acknowledged (the changelog, which a successor restores, never holds a
   batch whose changes are not on the broker);
2. the group's writes and the changelog checkpoint go to RocksDB in one
   write batch per partition (``StagedStore.commit``);
3. the next input offsets become committable; offsets are committed at most
   once per ``commit_interval`` seconds (Kafka Streams' ``commit.interval.ms``).

Meanwhile the loop evaluates the next batches against the staged state. So
a change is never lost (its input's offset is committed only after it is
acknowledged) and state is never durable ahead of the changes it implies;
a crash replays from the committed offset, and the processor skips inputs
its restored state already holds (the input offset recorded in the batch's
last changelog record). If a record cannot be delivered after the
producer's retries, the process exits so that a restart replays.

Rebalances: revoked partitions are drained (everything in flight settled,
offsets committed) and closed; assigned ones are opened, restored from
their changelog tail (the local checkpoint says where it starts), and
consumption resumes after whatever the state already holds. The group's
assignor (runtime/assignor.py) puts a partition where its freshest local
copy is and, with ``standby_replicas``, keeps standby copies on other
members (runtime/standby.py), so a failover restores a short tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from engine import Limits
from runtime.assignor import StandbyAssignor
from runtime.catalogs import CatalogCache
from runtime.dead_letters import dead_letter_record
from runtime.evaluator_tracing import EvaluatorTracing
from runtime.outputs import change_record_as, snapshot_record
from runtime.processor import Batch, PartitionProcessor, ProcessorConfig, merged_changelog
from runtime.restore import apply_changelog
from runtime.staged import StagedStore
from runtime.standby import StandbyCopies
from runtime.store import MIB, Store
from runtime.tasks import cancel_and_wait
from runtime.trace_context import merge_headers
from runtime.types import ChangelogRecord, OffsetRecord

__all__ = ["BatchEvaluator", "LoopSettings", "LoopTopics"]

log = logging.getLogger(__name__)
_RESTORE_FETCH_BYTES = 16 * 1024 * 1024
_NO_HEADERS: list[tuple[str, bytes]] = []  # aiokafka's own default (a list, never mutated)


@dataclass(frozen=True, slots=True)
class LoopTopics:
    input: str  # the evaluator's ordered log
    changes: str
    snapshot: str
    changelog: str  # compacted, one partition per input partition
    dead_letters: str


@dataclass(frozen=True, slots=True)
class LoopSettings:
    bootstrap: str
    group_id: str
    data_dir: Path
    processor: ProcessorConfig
    limits: Limits | None = None
    batch_max: int = 500
    commit_interval: float = 0.1
    punctuate_interval: float = 0.1  # idle wake-ups of due contacts
    max_in_flight: int = 16  # staged batches waiting in each stage of the acker, all partitions
    linger_ms: int = 5
    dead_letter_max_bytes: int = 1_000_000
    client_id: str = "segmentflow-evaluator"  # the API's URL: peers find it by it
    cache_bytes: int = 8 * MIB
    write_buffer_bytes: int = 4 * MIB
    #: decoded contact states kept across batches by the whole worker, in
    #: bytes of their encoding, shared evenly by the active partitions
    state_cache_bytes: int = 2 * MIB
    changes_format: str = "native"  # SEGMENTFLOW_CHANGES_FORMAT (models/change_events.py)
    topic_prefix: str = "segmentflow"  # in a CloudEvent's source
    standby_replicas: int = 0  # standby copies of each partition on other members
    session_timeout_ms: int = 10_000  # a dead member's partitions move after this


@dataclass(slots=True)
class _InFlight:
    partition: int
    batch: Batch
    outputs: list[asyncio.Future[Any]]
    next_offset: int | None  # input offset to commit once settled


@dataclass(slots=True)
class _Logged:
    """Batches whose outputs are acknowledged, and their one changelog send."""

    items: list[_InFlight]  # in evaluation order
    changelog: list[tuple[asyncio.Future[Any], int, int]]  # (producer batch, records, partition)


@dataclass
class Stats:
    inputs: int = 0
    batches: int = 0
    changes: int = 0
    dead_letters: int = 0
    committed: dict[int, int] = field(default_factory=dict)  # partition -> next offset
    restored: dict[int, int] = field(default_factory=dict)  # partition -> records, last assign


def _exit_process(exc: BaseException) -> None:
    log.critical("records not acknowledged; exiting so inputs replay", exc_info=exc)
    os._exit(70)


class BatchEvaluator:
    """Consumes ``topics.input`` in a consumer group and evaluates it."""

    def __init__(
        self,
        settings: LoopSettings,
        topics: LoopTopics,
        *,
        on_batch: Callable[[int, Batch, list[Any], list[tuple[str, dict[str, Any]]], float],
                           None] | None = None,
        on_fatal: Callable[[BaseException], None] = _exit_process,
        tracing: EvaluatorTracing | None = None,
    ) -> None:
        self.settings, self.topics = settings, topics
        self.on_batch, self.on_fatal = on_batch, on_fatal
        self.tracing = tracing  # None: tracing off, nothing read or recorded (docs/tracing.md)
        self.processors: dict[int, PartitionProcessor] = {}
        self.catalogs = CatalogCache(settings.limits)
        self.stats = Stats()
        self._store = Store(settings.data_dir, cache_bytes=settings.cache_bytes,
                            write_buffer_bytes=settings.write_buffer_bytes)
        self._queue: asyncio.Queue[_InFlight] = asyncio.Queue(settings.max_in_flight)
        #: groups of batches whose changes are acknowledged and changelog sent
        self._logged: asyncio.Queue[_Logged] = asyncio.Queue(settings.max_in_flight)
        #: the log stage gathers batches for one changelog send; woken early
        #: when the queue fills up (evaluation must not wait) or to drain
        self._log_wake = asyncio.Event()
        self._draining = 0
        self._last_log = 0.0
        self._lock = asyncio.Lock()  # the loop's batch vs rebalance callbacks
        self._committable: dict[TopicPartition, int] = {}
        self._last_commit = time.monotonic()
        self._commit_due = asyncio.Event()  # settled offsets wait to be committed
        self._tasks: list[asyncio.Task[None]] = []
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None  # changes, snapshots, dead letters
        #: the changelog's own producer: aiokafka keeps one produce request in
        #: flight per broker and producer, and changes queued behind the
        #: larger changelog requests of earlier batches waited for them
        self.changelog_producer: AIOKafkaProducer | None = None
        self.ready = asyncio.Event()  # set after the first assignment is restored
        self.standbys = StandbyCopies(self._store, settings.bootstrap, topics.changelog)
        self._copies: dict[int, int] = {}  # partition -> checkpoint of a closed local copy
        self._standby_before: set[int] = set()  # the standby set before a rebalance (logs)
        self._assignor = StandbyAssignor(topics.input, settings.standby_replicas,
                                         self.local_copies)
        self.progress = asyncio.Condition()  # notified after each offset commit and assignment

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        self.producer = await self._start_producer()
        self.changelog_producer = await self._start_producer()
        self._copies = self._store.local_checkpoints()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap, group_id=s.group_id, client_id=s.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=s.batch_max,
            isolation_level="read_uncommitted",
            partition_assignment_strategy=(self._assignor,),
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=max(100, s.session_timeout_ms // 3))
        self.consumer.subscribe([self.topics.input], listener=_Listener(self))
        await self.consumer.start()
        self._tasks = [asyncio.create_task(self._run(), name="evaluator-loop"),
                       asyncio.create_task(self._ack(), name="evaluator-acker"),
                       asyncio.create_task(self._settle_logged(), name="evaluator-settler"),
                       asyncio.create_task(self._commit_later(), name="evaluator-committer")]

    async def _start_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap, acks="all", enable_idempotence=True,
            linger_ms=self.settings.linger_ms, max_request_size=1_048_576,
            max_batch_size=1_048_576)
        await producer.start()
        return producer

    async def stop(self, *, settle: bool = True) -> None:
        """Stop consuming; ``settle``: wait for what is in flight and commit
        (a clean stop); without it, drop it (what kill -9 leaves behind)."""
        await cancel_and_wait(self._tasks[0] if self._tasks else None)
        if settle and self._tasks:
            await self._settled()
            await self._commit_offsets()
        for task in self._tasks[1:]:
            await cancel_and_wait(task)
        self._tasks = []
        if self.consumer is not None:
            if not settle:
                self.consumer.unsubscribe()  # no revoke callback: nothing settles
            await self.consumer.stop()
        await self.standbys.stop()
        for producer in (self.producer, self.changelog_producer):
            if producer is not None:
                await producer.stop()
        self.processors.clear()
        self._store.close()

    # -- the loop -----------------------------------------------------------------------

    async def _run(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        last_punctuation = time.monotonic()
        while True:
            # A running backfill continues at once (one chunk per partition
            # and round, behind whatever input was fetched); otherwise wait
            # for input at most until the next punctuation.
            busy = any(p.backfills for p in self.processors.values())
            fetched = await consumer.getmany(
                timeout_ms=0 if busy else int(self.settings.punctuate_interval * 1000),
                max_records=self.settings.batch_max)
            async with self._lock:
                for tp, records in fetched.items():
                    processor = self.processors.get(tp.partition)
                    if processor is None or not records:
                        continue  # revoked meanwhile
                    await self._evaluate(processor, tp.partition, records)
                now = time.monotonic()
                punctuate = now - last_punctuation >= self.settings.punctuate_interval
                if punctuate:
                    last_punctuation = now
                for partition, processor in list(self.processors.items()):
                    if TopicPartition(self.topics.input, partition) in fetched:
                        continue  # that batch ran its timers and backfills
                    if processor.backfills or (punctuate and processor.due_now()):
                        await self._evaluate(processor, partition, [])
            if busy and not fetched:
                await asyncio.sleep(0)  # let the acker and the API run between chunks

    async def _evaluate(self, processor: PartitionProcessor, partition: int,
                        records: list[Any]) -> None:
        inputs: list[tuple[str, dict[str, Any]]] = []
        kept: list[Any] = []
        undecodable: list[tuple[Any, str]] = []
        applied = processor.applied_offset
        for record in records:
            if applied is not None and record.offset <= applied:
                continue  # the restored state holds it already
            try:
                envelope = orjson.loads(record.value)
                inputs.append((envelope["kind"], envelope["body"]))
                kept.append(record)
            except Exception as exc:
                undecodable.append((record, f"undecodable envelope: {type(exc).__name__}: {exc}"))
        last = records[-1].offset if records else None
        started = time.perf_counter()
        batch = processor.process(inputs, last)
        elapsed = time.perf_counter() - started
        traced = (None if self.tracing is None  # the one tracing check of a batch
                  else self.tracing.evaluated(partition, kept, inputs, batch, elapsed))
        outputs = await self._send_outputs(partition, batch, traced)
        for refusal in batch.refused:
            if refusal.report:
                outputs.append(await self._dead_letter(kept[refusal.index], refusal.reason))
        for record, reason in undecodable:
            outputs.append(await self._dead_letter(record, reason))
        self.stats.inputs += len(records)
        self.stats.batches += 1
        self.stats.changes += len(batch.changes)
        if self.on_batch is not None:
            self.on_batch(partition, batch, kept, inputs, elapsed)
        await self._hand_over(_InFlight(partition, batch, outputs,
                                        last + 1 if last is not None else None))

    async def _hand_over(self, item: _InFlight) -> None:
        """To the acker; it stops gathering once half of ``max_in_flight``
        waits (evaluation must not wait for a gathering)."""
        await self._queue.put(item)
        if self._half_full():
            self._log_wake.set()

    def _half_full(self) -> bool:
        return self._queue.qsize() * 2 >= self.settings.max_in_flight

    async def _send_outputs(self, partition: int, batch: Batch,
                            traced: list[list[tuple[str, bytes]]] | None = None,
                            ) -> list[asyncio.Future[Any]]:
        """Changes (to the input's partition) and snapshot records (to their
        key's partition), as whole producer batches: per-record ``send``
        costs more than evaluating an input. ``traced``: each change's
        trace headers (tracing on and an input of the batch traced)."""
        partitions = self.settings.processor.partitions
        fmt, prefix = self.settings.changes_format, self.settings.topic_prefix
        changes: list[tuple[int, bytes | None, bytes | None]] = []
        headers: list[list[tuple[str, bytes]]] | None = None if fmt == "native" else []
        snapshots: list[tuple[int, bytes | None, bytes | None]] = []
        for change in batch.changes:
            key, value, change_headers = change_record_as(change, fmt, prefix)
            changes.append((partition, key, value))
            if headers is not None:
                headers.append(change_headers)
            s_key, s_value, s_partition = snapshot_record(change, partitions)
            snapshots.append((s_partition, s_key, s_value))
        if traced is not None:
            headers = traced if headers is None else [
                merge_headers(h, t) for h, t in zip(headers, traced, strict=True)]
        sent = await self._send_grouped(self.topics.changes, changes, headers=headers)
        sent += await self._send_grouped(self.topics.snapshot, snapshots)
        return [future for future, _, _ in sent]

    async def _send_changelog(self, items: list[_InFlight],
                              ) -> list[tuple[asyncio.Future[Any], int, int]]:
        """The changelog records of ``items``, one per changed key and
        partition (the latest value; the input offset record last)."""
        by_partition: dict[int, list[Sequence[ChangelogRecord]]] = {}
        for item in items:
            by_partition.setdefault(item.partition, []).append(item.batch.changelog)
        records = [(partition, key, value) for partition, changelogs in by_partition.items()
                   for key, value in merged_changelog(changelogs)]
        return await self._send_grouped(self.topics.changelog, records, self.changelog_producer)

    async def _send_grouped(
        self, topic: str, records: list[tuple[int, bytes | None, bytes | None]],
        producer: AIOKafkaProducer | None = None,
        headers: list[list[tuple[str, bytes]]] | None = None,
    ) -> list[tuple[asyncio.Future[Any], int, int]]:
        """(future, record count, partition) per producer batch; records keep their
        order within each partition. A batch's future gives its base offset.
        ``producer``: the outputs' unless given; ``headers``: each record's
        Kafka headers, when they have any."""
        producer = producer or self.producer
        assert producer is not None
        by_partition: dict[int, list[tuple[bytes | None, bytes | None, Any]]] = {}
        if headers is None:
            for p, key, value in records:
                by_partition.setdefault(p, []).append((key, value, _NO_HEADERS))
        else:
            for (p, key, value), record_headers in zip(records, headers, strict=True):
                by_partition.setdefault(p, []).append((key, value, record_headers))
        sent: list[tuple[asyncio.Future[Any], int, int]] = []
        for p, items in by_partition.items():
            builder, count = producer.create_batch(), 0
            for key, value, hdrs in items:
                if builder.append(key=key, value=value, timestamp=None, headers=hdrs) is None:
                    sent.append((await _send_now(producer, builder, topic, p), count, p))
                    builder, count = producer.create_batch(), 0
                    if builder.append(key=key, value=value, timestamp=None,
                                      headers=hdrs) is None:
                        raise ValueError(f"a record of {len(value or b''):,} bytes does not "
                                         "fit a producer batch")
                count += 1
            if count:
                sent.append((await _send_now(producer, builder, topic, p), count, p))
        return sent

    async def _dead_letter(self, record: Any, reason: str) -> asyncio.Future[Any]:
        producer = self.producer
        assert producer is not None
        self.stats.dead_letters += 1
        value = orjson.dumps(dead_letter_record(
            source_topic=record.topic, partition=record.partition, offset=record.offset,
            raw=record.value, reason=reason, max_bytes=self.settings.dead_letter_max_bytes))
        return await producer.send(self.topics.dead_letters, value=value, key=record.key)

    # -- settling ---------------------------------------------------------------------------

    async def _ack(self) -> None:
        """In order: batches whose changes, snapshot records and dead letters
        are acknowledged get their changelog records sent. The changelog is
        the state a successor restores, and a restored batch's inputs are
        skipped: written before the changes were, it could outlive changes
        that were never delivered (different brokers lead the two topics; on
        one broker, aiokafka's one request in flight per producer kept the
        order).

        Group commit: the batches queued meanwhile (at most one gathering
        per half ``commit_interval``, sooner when half of ``max_in_flight``
        waits) share one changelog send, one record per changed key, and
        one RocksDB write per partition (under light load every input is a
        batch of its own; it did not measurably change the CPU per input
        there: docs/architecture.md). Outputs are sent when evaluated, so
        this delays commits, never changes."""
        while True:
            items = [await self._queue.get()]
            try:
                with self._fatal():
                    await self._gather()
                    while not self._queue.empty():
                        items.append(self._queue.get_nowait())
                    for item in items:
                        for future in item.outputs:
                            await future
                    self._last_log = time.monotonic()
                    await self._logged.put(_Logged(items, await self._send_changelog(items)))
            finally:
                for _ in items:
                    self._queue.task_done()

    @contextlib.contextmanager
    def _fatal(self) -> Iterator[None]:
        """A failure in the acker is fatal to the worker (a restart replays)."""
        try:
            yield
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.on_fatal(exc)
            raise

    async def _gather(self) -> None:
        """Until the next changelog send is due, the queue is half full, or
        everything in flight must settle (a rebalance, a stop)."""
        delay = self._last_log + self.settings.commit_interval / 2 - time.monotonic()
        if delay <= 0 or self._draining or self._half_full():
            return
        self._log_wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._log_wake.wait(), delay)

    async def _settle_logged(self) -> None:
        """In order: a group whose changelog records are acknowledged is
        written to RocksDB and its input offsets become committable."""
        while True:
            logged = await self._logged.get()
            try:
                with self._fatal():
                    await self._settle(logged)
                    self._commit_due.set()
            finally:
                self._logged.task_done()

    async def _settled(self) -> None:
        """Until every batch handed to the acker has settled."""
        self._draining += 1
        self._log_wake.set()
        try:
            await self._queue.join()
            await self._logged.join()
        finally:
            self._draining -= 1

    async def _commit_later(self) -> None:
        """Commit what settled, at most once per ``commit_interval``: a
        commit is a broker write, and under light load every input is a
        batch of its own (a commit per input made a third of the broker's
        work at 500 inputs/s)."""
        while True:
            await self._commit_due.wait()
            self._commit_due.clear()
            delay = self._last_commit + self.settings.commit_interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._commit_offsets()

    async def _settle(self, logged: _Logged) -> None:
        checkpoints: dict[int, int] = {}  # partition -> its last changelog offset
        for future, count, partition in logged.changelog:
            checkpoints[partition] = (await future).offset + count - 1
        by_partition: dict[int, list[_InFlight]] = {}
        for item in logged.items:
            by_partition.setdefault(item.partition, []).append(item)
        for partition, items in by_partition.items():
            processor = self.processors.get(partition)
            if processor is None:
                continue  # revoked and closed: its successor restores from the changelog
            processor.store.commit(items[-1].batch.seq, checkpoints.get(partition))
            offsets = [item.next_offset for item in items if item.next_offset is not None]
            if offsets:
                self._committable[TopicPartition(self.topics.input, partition)] = offsets[-1]

    async def _commit_offsets(self) -> None:
        if not self._committable or self.consumer is None:
            return
        offsets, self._committable = self._committable, {}
        self._last_commit = time.monotonic()
        try:
            await self.consumer.commit(offsets)
        except Exception:  # a rebalance is under way: the revoke commits after draining
            log.warning("offset commit failed; retried at the next commit", exc_info=True)
            for tp, offset in offsets.items():
                self._committable.setdefault(tp, offset)
        for tp, offset in offsets.items():
            self.stats.committed[tp.partition] = offset
        async with self.progress:
            self.progress.notify_all()

    async def wait_committed(self, ends: dict[int, int], timeout: float) -> None:
        """Until the committed input offsets reach ``ends`` (partition ->
        end offset): every input before them is evaluated, its changes and
        state acknowledged ("caught up")."""
        def done() -> bool:
            return all(self.stats.committed.get(p, 0) >= end for p, end in ends.items() if end)

        async with self.progress:
            await asyncio.wait_for(self.progress.wait_for(done), timeout)

    # -- rebalances ---------------------------------------------------------------------------

    def local_copies(self) -> dict[int, int]:
        """{partition: checkpoint} of every local copy (told to the group's
        leader when joining: it places partitions where their state is)."""
        copies = dict(self._copies)
        for partition, store in self._store.partitions.items():
            checkpoint = store.checkpoint()
            if checkpoint is not None:
                copies[partition] = checkpoint
        return copies

    async def _close_standbys(self) -> None:
        """Close the standby copies, remembering their checkpoints (told to
        the leader at the next join) and which they were (the restore log)."""
        if self.standbys.partitions:
            self._copies.update({p: c for p, c in self.standbys.checkpoints().items()
                                 if c is not None})
            self._standby_before = self.standbys.partitions
        await self.standbys.stop()

    async def revoke(self, partitions: set[TopicPartition]) -> None:
        async with self._lock:
            await self._settled()  # everything in flight settles first
            await self._commit_offsets()
            self._copies.update(self.local_copies())
            for tp in partitions:
                if tp.topic == self.topics.input:
                    self.processors.pop(tp.partition, None)
                    self._store.revoke(tp.partition)
            self._share_state_cache()
            await self._close_standbys()

    def _share_state_cache(self) -> None:
        """The worker's state cache budget, split evenly among its partitions."""
        if self.processors:
            share = self.settings.state_cache_bytes // len(self.processors)
            for processor in self.processors.values():
                processor.state_cache_bytes = share

    async def assign(self, partitions: set[TopicPartition]) -> None:
        """Open and restore every assigned partition, then publish them
        together: readers (the API, /ready) never see half an assignment."""
        consumer = self.consumer
        assert consumer is not None
        async with self._lock:
            await self._close_standbys()  # a standby copy may become active here
            opened: dict[int, PartitionProcessor] = {}
            for tp in sorted(partitions):
                if tp.topic != self.topics.input or tp.partition in self.processors:
                    continue
                base = self._store.assign(tp.partition)
                started, checkpoint = time.monotonic(), base.checkpoint()
                restored = self.stats.restored[tp.partition] = await self._restore(
                    base, tp.partition)
                log.info("partition %d restored: %d changelog records after offset %s "
                         "in %.2f s%s", tp.partition, restored, checkpoint,
                         time.monotonic() - started,
                         " (standby copy)" if tp.partition in self._standby_before else "")
                processor = PartitionProcessor(
                    StagedStore(base), self.settings.processor, self.catalogs)
                opened[tp.partition] = processor
                if processor.applied_offset is not None:
                    committed = await consumer.committed(tp)
                    if committed is None or committed <= processor.applied_offset:
                        consumer.seek(tp, processor.applied_offset + 1)
            self.processors.update(opened)
            self._share_state_cache()
            await self.standbys.start(self._assignor.standby - set(self.processors))
        self.ready.set()
        async with self.progress:
            self.progress.notify_all()

    async def _restore(self, base: Any, partition: int) -> int:
        """Apply the changelog after the local checkpoint (Kafka Streams'
        .checkpoint): the whole log for a new store, the tail otherwise.
        Returns the number of records applied."""
        tp = TopicPartition(self.topics.changelog, partition)
        # Large fetches: a restore reads a whole log, not a live tail.
        reader = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap,
                                  enable_auto_commit=False, group_id=None,
                                  max_partition_fetch_bytes=_RESTORE_FETCH_BYTES,
                                  fetch_max_bytes=_RESTORE_FETCH_BYTES)
        await reader.start()
        try:
            reader.assign([tp])
            end = (await reader.end_offsets([tp]))[tp]
            checkpoint = base.checkpoint()
            start = 0 if checkpoint is None else checkpoint + 1
            if start >= end:
                return 0
            reader.seek(tp, start)
            records: list[OffsetRecord] = []
            applied = 0
            while True:
                fetched = await reader.getmany(tp, timeout_ms=1000, max_records=50_000)
                for record in fetched.get(tp, []):
                    records.append((record.offset, record.key, record.value))
                if records and (records[-1][0] >= end - 1 or len(records) >= 50_000):
                    applied += apply_changelog(base, records).applied
                    records = []
                if await reader.position(tp) >= end:
                    break
            if records:
                applied += apply_changelog(base, records).applied
            return applied
        finally:
            await reader.stop()


class _Listener(ConsumerRebalanceListener):
    def __init__(self, owner: BatchEvaluator) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner.revoke(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.owner.assign(set(assigned))


async def _send_now(producer: AIOKafkaProducer, builder: Any, topic: str,
                    partition: int) -> asyncio.Future[Any]:
    """Send a whole producer batch without lingering: an open batch waits out
    ``linger_ms`` in aiokafka's accumulator (and holds back the next batch of
    its partition), though nothing more will be appended to it."""
    builder.close()
    return await producer.send_batch(builder, topic, partition=partition)
