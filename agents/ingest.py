"""Ingest: validate upstream input, dead-letter what is bad, and route what is
good into the evaluator's single ordered log (keyed by contact_id).

Per-contact inputs go to the contact's partition; control inputs that concern
every contact (segment definitions, accounts) are broadcast to every
partition so each partition sees them in order with its contacts' inputs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnknownError,
)
from pydantic import BaseModel, TypeAdapter

from agents.codec import dumps, envelope_around
from agents.dead_letters import dead_letter_record, describe_error
from agents.event_types import (
    CloudEventProblem,
    EventTypeFeed,
    EventTypeProblem,
    InteractionGate,
)
from agents.ingest_tracing import IngestTracing
from agents.offset_committer import IntervalCommitter
from agents.output import OutputProducer, confirm_or_exit
from agents.partitioning import partition_for
from app.faust_app import Topics
from app.metrics import Metrics, dead_letter_reason
from app.settings import Settings
from models.inputs import AccountInput, ContactInput, Interaction, StaticEdit
from models.segments import SegmentDefinition, SegmentDelete

__all__ = ["LoopEvent", "Route", "ingest_group", "register_ingest"]

log = logging.getLogger(__name__)

BROADCAST = -1  # a Route partition meaning "every partition"


@dataclass(frozen=True)
class Route:
    """Where a validated input goes on the evaluator's log."""

    kind: str
    key: str
    partition: int | None  # None: by key; BROADCAST: every partition


def _decode_segment_message(raw: bytes) -> BaseModel:
    document = orjson.loads(raw)
    if isinstance(document, dict) and document.get("op") == "delete":
        return SegmentDelete.model_validate(document)
    return SegmentDefinition.model_validate(document)


def _adapter(model: Any) -> Callable[[bytes], BaseModel]:
    return TypeAdapter(model).validate_json


def _routes(settings: Settings, topics: Topics) -> Iterable[tuple[Any, Callable, Callable]]:
    """(source topic, decoder, router) for every upstream topic."""
    yield (
        topics.contacts,
        _adapter(ContactInput),
        lambda m: Route("contact", m.contact_id, None),
    )
    yield (
        topics.interactions,
        _adapter(Interaction),
        lambda m: Route("interaction", m.contact_id, None),
    )
    yield (
        topics.static_edits,
        _adapter(StaticEdit),
        lambda m: Route("static_edit", m.contact_id, None),
    )
    yield (
        topics.accounts,
        _adapter(AccountInput),
        lambda m: Route("account", m.account_id, BROADCAST),
    )
    yield (
        topics.segment_definitions,
        _decode_segment_message,
        lambda m: Route(
            "segment_delete" if isinstance(m, SegmentDelete) else "segment",
            m.segment_id if isinstance(m, SegmentDelete) else m.id,
            BROADCAST,
        ),
    )


async def send_dead_letter(
    topics: Topics, settings: Settings, message: Any, raw: bytes | None, reason: str,
    *, wait: bool = False, metrics: Metrics | None = None,
) -> None:
    """Publish a dead letter. ``wait``: send now and wait for the broker's ack
    (the evaluator's case: Faust acks an event whose processing failed, so
    the dead letter must be durable before we move on)."""
    if metrics is not None:
        metrics.dead_letters.labels(dead_letter_reason(reason)).inc()
    record = dead_letter_record(
        source_topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        raw=raw,
        reason=reason,
        max_bytes=settings.dead_letter_max_bytes,
    )
    log.warning("dead-letter %s[%s]@%s: %s", message.topic, message.partition,
                message.offset, reason)
    sent = await topics.dead_letters.send(key=message.key, value=dumps(record), force=wait)
    if wait:
        await sent


def register_ingest(
    app: faust.App, topics: Topics, settings: Settings, metrics: Metrics | None = None,
    topics_declared: Callable[[], bool] = lambda: True,
    event_types: EventTypeFeed | None = None,
    tracing: IngestTracing | None = None,
) -> Callable[[], bool]:
    """``topics_declared``: true once the worker created its topics (the
    batch loop waits for it before forwarding). ``event_types``: the
    declarations interactions are checked against (agents/event_types.py);
    None: the built-in ones, never updated (tests without a broker).
    ``tracing``: spans and trace headers (docs/tracing.md); None: off.
    Returns whether ingest is consuming (the batch loop: its consumer holds
    upstream partitions; Faust's agents: always)."""
    if event_types is None:
        event_types = EventTypeFeed.fixed()
    gate = InteractionGate(event_types, settings.accept_undeclared_event_types)
    metrics = metrics or Metrics()
    # One producer per upstream topic: after a record the broker refused, an
    # agent replaces its producer (OutputProducer.reset) without failing the
    # records the other agents have in flight.
    producers: list[OutputProducer] = []

    @app.on_before_shutdown.connect
    async def _stop_producers(*_: Any, **__: Any) -> None:
        for producer in producers:
            await producer.stop()

    handlers: dict[str, IngestHandler] = {}
    for source, decode, route in _routes(settings, topics):
        producers.append(OutputProducer(settings))
        handler = _handler(topics, settings, source, decode, route, metrics, producers[-1],
                           gate if source is topics.interactions else None, tracing)
        if settings.ingest == "batch":
            handlers[source.get_topic_name()] = handler
        else:
            _register_agent(app, settings, source, handler.handle)
    if handlers:
        return _register_loop(app, settings, handlers, topics_declared)
    return lambda: True


# Errors that concern one record, not the broker: the record is dead-lettered
# and ingest moves on. aiokafka reports the broker's INVALID_RECORD (87) as
# UnknownError; it is only taken as a record's fault when that record, resent
# on its own, fails again (``_resend_alone``).
RECORD_ERRORS: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError,
    CorruptRecordException, InvalidTimestampError, UnknownError,
)

# After a refused record, aiokafka's idempotent producer fails the records
# queued behind it on that partition with OutOfOrderSequenceNumber (and stops):
# those are resent on a new producer, not dead-lettered.
POISONED: tuple[type[BaseException], ...] = (OutOfOrderSequenceNumber,)

SOURCE_HEADER = "segmentflow-source"


def record_level(exc: BaseException) -> bool:
    """True when a send failure is the record's fault (dead-letter it); False
    for the broker's or the network's (exit, so the batch replays)."""
    return isinstance(exc, RECORD_ERRORS) or not isinstance(exc, KafkaError)


def source_header(message: Any) -> list[tuple[str, bytes]]:
    """``topic:partition:offset`` of the input a forwarded record came from."""
    return [(SOURCE_HEADER, f"{message.topic}:{message.partition}:{message.offset}".encode())]


def _cloudevents_headers(message: Any) -> list[tuple[str, bytes]]:
    """A refused binary-mode CloudEvent's attributes (``ce_*`` headers and
    its content-type), kept on its dead letter: the value alone is its data."""
    headers = getattr(message, "headers", None)
    if not headers:
        return []
    pairs = headers.items() if isinstance(headers, dict) else headers
    kept = [(k if isinstance(k, str) else k.decode(errors="replace"), v) for k, v in pairs]
    if not any(k == "ce_specversion" for k, _ in kept):
        return []
    return [(k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in kept
            if k.startswith("ce_") or k.lower() == "content-type"]


@dataclass
class _Item:
    """One input of a batch: the records it forwards, or why it is refused."""

    event: Any
    sends: list[tuple[int, asyncio.Future | None]] = field(default_factory=list)
    value: bytes = b""
    key: bytes = b""
    reason: str | None = None
    trace: list[tuple[str, bytes]] | None = None  # its trace headers (tracing on)


@dataclass
class _Ordering:
    """Keeps a source's records in order on the evaluator's log while
    batches are pipelined: a batch queues its records holding ``lock``; a
    batch whose records failed sets ``blocked``, then resends them holding
    ``lock``; no batch is queued while ``blocked`` (cleared once every
    outstanding batch has settled)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    blocked: bool = False


@dataclass(frozen=True)
class IngestHandler:
    """Ingest of one upstream topic's batches: ``submit`` then the returned
    ``settle`` (pipelined by the batch loop), or ``handle`` (both, in turn)."""

    submit: Callable[[list[Any]], Awaitable[Callable[[], Awaitable[None]] | None]]
    handle: Callable[[list[Any]], Awaitable[None]]
    ordering: _Ordering

    def unblock(self) -> None:
        """Every outstanding batch has settled: ``submit`` may queue again."""
        self.ordering.blocked = False


def _exit_for(exc: BaseException) -> None:
    log.critical("ingest cannot reach the broker (%s: %s); exiting so inputs replay",
                 type(exc).__name__, exc, exc_info=exc)
    os._exit(70)


def _handler(
    topics: Topics,
    settings: Settings,
    source: Any,
    decode: Callable[[bytes], BaseModel],
    route: Callable[[BaseModel], Route],
    metrics: Metrics,
    producer: OutputProducer,
    gate: InteractionGate | None = None,
    tracing: IngestTracing | None = None,
) -> IngestHandler:
    """``handle(events)``: forward or dead-letter every input of a batch of
    one upstream topic, and return once the broker acknowledged all of it
    (or ``submit`` and ``settle``, the two halves, for pipelining).
    An event has ``.value`` and ``.message`` (topic, partition, offset,
    key, timestamp in seconds): a Faust event or a ``LoopEvent``.
    ``gate`` (interactions): decodes instead of ``decode`` and checks the
    event type; the input forwarded is the one it returns (the same bytes
    unless a declared time field or a CloudEvent had to be mapped).
    ``tracing``: a span per input, its context in the forwarded records'
    headers (docs/tracing.md); None (off): no header is read or written."""
    short = source.get_topic_name().rsplit(".", 1)[-1]
    accepted = metrics.inputs.labels(short, "accepted")
    refused = metrics.inputs.labels(short, "dead_lettered")
    log_topic = topics.evaluator_input.get_topic_name()
    dead_letter_topic = topics.dead_letters.get_topic_name()
    every_partition = range(settings.partitions)
    limit = settings.max_input_bytes

    if tracing is None:
        def record_headers(item: _Item) -> list[tuple[str, bytes]]:
            return source_header(item.event.message)
    else:
        def record_headers(item: _Item) -> list[tuple[str, bytes]]:
            return source_header(item.event.message) + (item.trace or [])

    async def forward(item: _Item, batch: dict[str, bool]) -> None:
        """Validate one input and queue its records; or set why it is refused."""
        raw = item.event.value
        if raw is None:
            item.reason = "empty message (null value)"
            return
        if len(raw) > limit:
            item.reason = f"input of {len(raw)} bytes exceeds {limit}"
            return
        try:
            if gate is None:
                target = route(decode(raw))
            else:
                try:
                    model, raw = gate.decode(raw, item.event.message)
                except EventTypeProblem:
                    if batch.get("refreshed"):
                        raise
                    # Declarations acknowledged before this input are read
                    # first (once per batch), then it is checked again.
                    batch["refreshed"] = True
                    await gate.refresh()
                    model, raw = gate.decode(raw, item.event.message)
                target = route(model)
        except (EventTypeProblem, CloudEventProblem) as exc:
            item.reason = str(exc)
            return
        except Exception as exc:  # any decode failure is the input's fault
            item.reason = describe_error(exc)
            return
        # The validated input travels as upstream wrote it (no re-encoding),
        # with its own record timestamp, so the evaluator measures latency
        # from when upstream produced it. The limit is on what is forwarded.
        value = envelope_around(target.kind, raw)
        if len(value) > limit:
            item.reason = (f"forwarded record of {len(value)} bytes (input of {len(raw)} "
                           f"bytes in its envelope) exceeds {limit}")
            return
        item.value, item.key = value, target.key.encode()
        partitions = (every_partition if target.partition == BROADCAST
                      else (partition_for(target.key, settings.partitions),))
        item.sends = [(p, None) for p in partitions]  # sent by _send_batched

    async def _send_batched(items: list[_Item]) -> None:
        """Queue the accepted inputs' records as whole producer batches, in
        input order per partition: a per-record ``send`` (partitioner,
        accumulator, a future per record) cost more than the batch builder's
        append. A record's delivery future is its producer batch's, as with
        ``send`` (a broker refusal fails the whole batch either way)."""
        open_batches: dict[int, tuple[Any, list[tuple[_Item, int]]]] = {}
        for item in items:
            if item.reason is not None or not item.sends:
                continue
            stamp_ms, headers = _stamp_ms(item.event.message), record_headers(item)
            for i, (partition, _) in enumerate(item.sends):
                entry = open_batches.get(partition)
                if entry is None:
                    entry = open_batches[partition] = (await producer.create_batch(), [])
                if entry[0].append(key=item.key, value=item.value, timestamp=stamp_ms,
                                   headers=headers) is None:  # full: send it, start another
                    await _send_builder(partition, *entry)
                    entry = open_batches[partition] = (await producer.create_batch(), [])
                    entry[0].append(key=item.key, value=item.value, timestamp=stamp_ms,
                                    headers=headers)  # an empty batch takes any record
                entry[1].append((item, i))
        for partition, (builder, members) in open_batches.items():
            await _send_builder(partition, builder, members)

    async def _send_builder(partition: int, builder: Any,
                            members: list[tuple[_Item, int]]) -> None:
        try:
            future = await producer.send_batch(builder, log_topic, partition)
        except Exception as exc:
            if not record_level(exc):
                _exit_for(exc)
            for item, _ in members:  # one by one: only the offending record is refused
                await _send_all(item)
            return
        for item, i in members:
            item.sends[i] = (partition, future)

    async def _send_all(item: _Item) -> None:
        stamp_ms, headers = _stamp_ms(item.event.message), record_headers(item)
        for i, (partition, future) in enumerate(item.sends):
            if future is not None and not _failed(future):
                continue  # already delivered (a resend after a record error)
            try:
                future = await producer.send(log_topic, item.key, item.value, partition,
                                             timestamp_ms=stamp_ms, headers=headers)
            except Exception as exc:
                if not record_level(exc):
                    _exit_for(exc)
                item.reason = f"not forwarded: {type(exc).__name__}: {exc}"
                return
            item.sends[i] = (partition, future)

    async def _resend_alone(item: _Item) -> None:
        """Resend an input's failed records on their own, on a producer that
        has nothing else queued (a broker error fails a whole producer batch,
        other inputs' records included); what fails again is the input's
        fault, and the producer is replaced once more."""
        await _send_all(item)
        if item.reason is not None:
            return
        await producer.flush()
        for _, future in item.sends:
            exc = await _outcome(future)  # type: ignore[arg-type]
            if exc is not None:
                if not (record_level(exc) or isinstance(exc, POISONED)):
                    _exit_for(exc)
                item.reason = f"not forwarded: {type(exc).__name__}: {exc}"
                await producer.reset()
                return

    async def dead_letter(items: list[_Item]) -> None:
        """Send the batch's dead letters and wait for the broker's ack."""
        futures = []
        for item in items:
            message, raw = item.event.message, item.event.value
            record = dumps(dead_letter_record(
                source_topic=message.topic, partition=message.partition, offset=message.offset,
                raw=raw, reason=item.reason or "", max_bytes=settings.dead_letter_max_bytes))
            log.warning("dead-letter %s[%s]@%s: %s", message.topic, message.partition,
                        message.offset, item.reason)
            headers = record_headers(item) + _cloudevents_headers(message)
            try:
                futures.append(await producer.send(dead_letter_topic, message.key, record,
                                                   headers=headers))
            except Exception as exc:  # an upstream key too large to copy
                if not record_level(exc):
                    _exit_for(exc)
                futures.append(await producer.send(dead_letter_topic, None, record,
                                                   headers=headers))
        await confirm_or_exit(producer, futures)

    ordering = _Ordering()

    async def submit(events: list[Any]) -> Callable[[], Awaitable[None]] | None:
        """Validate a batch and queue its records (sent at once, not lingering);
        returns ``settle``, which waits for the broker's acks and handles what
        failed. None: an earlier batch is resending refused records, and every
        outstanding ``settle`` must finish before more is queued (a later
        batch's records would otherwise reach the log before its resends)."""
        items = [_Item(event) for event in events]
        async with ordering.lock:
            if ordering.blocked:
                return None
            traced = None
            if tracing is not None:  # tracing on: a span per input (docs/tracing.md)
                traced = tracing.begin([item.event.message for item in items])
                for item, (_, trace_headers) in zip(items, traced, strict=True):
                    item.trace = trace_headers
            if gate is not None and not gate.feed.loaded:
                await gate.feed.wait_loaded()  # never refuse a type declared before we started
            batch: dict[str, bool] = {}
            for item in items:
                try:
                    await forward(item, batch)
                except Exception as exc:  # a bug must not skip the batch's other inputs
                    log.exception("ingest failed on %s", item.event.message)
                    item.reason = f"ingest failed: {type(exc).__name__}: {exc}"
            await _send_batched(items)
            try:
                producer.send_now()
            except Exception as exc:
                _exit_for(exc)

        async def settle() -> None:
            await _settle(items, traced)

        return settle

    async def _settle(items: list[_Item], traced: Any) -> None:
        failed: list[_Item] = []
        for item in items:
            if item.reason is not None:
                continue
            for _, future in item.sends:
                exc = await _outcome(future)  # type: ignore[arg-type]
                if exc is None:
                    continue
                if not (record_level(exc) or isinstance(exc, POISONED)):
                    _exit_for(exc)
                failed.append(item)
                break
        if failed:
            ordering.blocked = True  # before any await: no batch queues behind the resends
            async with ordering.lock:
                await producer.reset()
                for item in failed:
                    await _resend_alone(item)
        refused_items = [item for item in items if item.reason is not None]
        if refused_items:
            await dead_letter(refused_items)
        for item in items:
            if item.reason is None:
                accepted.inc()
            else:
                refused.inc()
                metrics.dead_letters.labels(dead_letter_reason(item.reason)).inc()
        if traced is not None and tracing is not None:
            tracing.end(traced, [(item.value, len(item.sends), item.reason) for item in items])

    async def handle(events: list[Any]) -> None:
        """The whole batch: forwarded or dead-lettered, and acknowledged."""
        settle = await submit(events)
        assert settle is not None  # nothing else is outstanding
        await settle()
        ordering.blocked = False

    return IngestHandler(submit, handle, ordering)


def _register_agent(app: faust.App, settings: Settings, source: Any,
                    handle: Callable[[list[Any]], Awaitable[None]]) -> None:
    """Ingest of one upstream topic as a Faust agent (SEGMENTFLOW_INGEST=faust)."""
    name = "ingest-" + source.get_topic_name().rsplit(".", 1)[-1]

    async def ingest(stream: faust.StreamT) -> None:
        # Batches: one broker round trip confirms a whole batch's forwards and
        # dead letters before take_events acks (and later commits) its inputs;
        # every input is either forwarded or dead-lettered by then.
        async for events in stream.take_events(settings.batch_max, settings.batch_within):
            await handle(events)

    app.agent(source, name=name)(ingest)


@dataclass(frozen=True, slots=True)
class LoopMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp: float | None  # seconds, as Faust's
    headers: Any = None  # the record's headers (CloudEvents binary mode: ce_*)


@dataclass(frozen=True, slots=True)
class LoopEvent:
    """An aiokafka record in the shape ``handle`` reads (Faust's event's)."""

    value: bytes | None
    message: LoopMessage


def ingest_group(settings: Settings) -> str:
    return f"{settings.topic_prefix}-ingest"


#: batches whose records are in flight (submitted, not yet settled) at most
_IN_FLIGHT = 8


def _register_loop(app: faust.App, settings: Settings, handlers: dict[str, IngestHandler],
                   topics_declared: Callable[[], bool]) -> Callable[[], bool]:
    """Ingest as one aiokafka batch loop over every upstream topic
    (SEGMENTFLOW_INGEST=batch, the default): Faust's per-event stream path
    capped the whole service near its 4-5k records/s. Pipelined: each
    fetched batch (per source partition) is validated and its records are
    sent, and the loop fetches the next one while the broker acknowledges
    them; batches settle in order, and once a batch settled (everything
    forwarded or dead-lettered, acked) its offsets are committed in the
    background, every ``commit_interval`` (agents/offset_committer.py)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumers: list[AIOKafkaConsumer] = []  # created inside the event loop
    in_flight: collections.deque[asyncio.Task[None]] = collections.deque()

    async def settled(before: asyncio.Task[None] | None, settle: Callable[[], Awaitable[None]],
                      offsets: dict[TopicPartition, int]) -> None:
        if before is not None:
            await before  # in order: offsets are committed as a prefix
        await settle()
        committer.handled(offsets)

    async def drain(keep: int) -> None:
        """Wait until at most ``keep`` batches are in flight."""
        while len(in_flight) > keep:
            await in_flight.popleft()

    committer = IntervalCommitter(settings.commit_interval, settle=lambda: drain(0))

    async def submit(handler: IngestHandler, tp: TopicPartition, records: list[Any]) -> None:
        events = [LoopEvent(r.value, LoopMessage(
            r.topic, r.partition, r.offset, r.key,
            r.timestamp / 1000 if r.timestamp is not None else None, r.headers))
            for r in records]
        while (settle := await handler.submit(events)) is None:
            await drain(0)  # an earlier batch resends refused records: all settle first
            handler.unblock()
        before = in_flight[-1] if in_flight else None
        in_flight.append(asyncio.create_task(
            settled(before, settle, {tp: records[-1].offset + 1}), name="ingest-settle"))

    async def run() -> None:
        while not topics_declared():  # the log to forward to must exist first
            await asyncio.sleep(0.05)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers, group_id=ingest_group(settings),
            enable_auto_commit=False, auto_offset_reset="earliest",
            max_poll_records=settings.batch_max, metadata_max_age_ms=5000,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.session_timeout_ms // 3)
        consumers.append(consumer)
        consumer.subscribe(list(handlers), listener=committer)
        await consumer.start()
        committer.start(consumer)
        while True:
            fetched = await consumer.getmany(timeout_ms=500, max_records=settings.batch_max)
            for tp, records in fetched.items():
                if records:
                    await drain(_IN_FLIGHT - 1)
                    await submit(handlers[tp.topic], tp, records)
            while in_flight and in_flight[0].done():
                in_flight.popleft().result()  # a settle's bug surfaces here

    @app.task
    async def _ingest_loop() -> None:
        await run()

    @app.on_before_shutdown.connect
    async def _stop_ingest_loop(*_: Any, **__: Any) -> None:
        # What settles in time is committed; the rest replays after a restart
        # (a broker gone at shutdown must not hold the worker's stop).
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(drain(0), timeout=10)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(committer.stop(), timeout=5)
        for consumer in consumers:
            await consumer.stop()

    return lambda: bool(consumers) and bool(consumers[0].assignment())


def _stamp_ms(message: Any) -> int | None:
    """The forwarded record's timestamp: the input's own (ms), so the
    evaluator measures latency from when upstream produced it."""
    return int(message.timestamp * 1000) if message.timestamp else None


def _failed(future: asyncio.Future) -> bool:
    return future.done() and not future.cancelled() and future.exception() is not None


async def _outcome(future: asyncio.Future) -> BaseException | None:
    """The delivery's error, or None once the broker acked it."""
    try:
        await future
    except Exception as exc:
        return exc
    return None
