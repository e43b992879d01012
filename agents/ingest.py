"""Ingest: validate upstream input, dead-letter what is bad, and route what is
good into the evaluator's single ordered log (keyed by contact_id).

Per-contact inputs go to the contact's partition; control inputs that concern
every contact (segment definitions, accounts) are broadcast to every
partition so each partition sees them in order with its contacts' inputs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import faust
import orjson
from pydantic import BaseModel, TypeAdapter

from agents.output import OutputProducer, confirm_or_exit
from app.codec import dumps, envelope_around
from app.dead_letters import dead_letter_record, describe_error
from app.faust_app import Topics
from app.metrics import Metrics, dead_letter_reason
from app.partitioning import partition_for
from app.settings import Settings
from models.inputs import AccountInput, ContactInput, Interaction, StaticEdit
from models.segments import SegmentDefinition, SegmentDelete

__all__ = ["Route", "register_ingest"]

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
    app: faust.App, topics: Topics, settings: Settings, metrics: Metrics | None = None
) -> None:
    metrics = metrics or Metrics()
    producer = OutputProducer(settings)

    @app.on_before_shutdown.connect
    async def _stop_producer(*_: Any, **__: Any) -> None:
        await producer.stop()

    for source, decode, route in _routes(settings, topics):
        _register_one(app, topics, settings, source, decode, route, metrics, producer)


def _register_one(
    app: faust.App,
    topics: Topics,
    settings: Settings,
    source: Any,
    decode: Callable[[bytes], BaseModel],
    route: Callable[[BaseModel], Route],
    metrics: Metrics,
    producer: OutputProducer,
) -> None:
    short = source.get_topic_name().rsplit(".", 1)[-1]
    name = "ingest-" + short
    accepted = metrics.inputs.labels(short, "accepted")
    refused = metrics.inputs.labels(short, "dead_lettered")
    log_topic = topics.evaluator_input.get_topic_name()
    every_partition = range(settings.partitions)

    async def forward(event: faust.EventT, pending: list[Any]) -> None:
        raw = event.value
        message = event.message
        if raw is None or len(raw) > settings.max_input_bytes:
            reason = ("empty message (null value)" if raw is None else
                      f"input of {len(raw)} bytes exceeds {settings.max_input_bytes}")
            refused.inc()
            await send_dead_letter(topics, settings, message, raw, reason, metrics=metrics)
            return
        try:
            target = route(decode(raw))
        except Exception as exc:  # any decode failure is the input's fault
            refused.inc()
            await send_dead_letter(topics, settings, message, raw, describe_error(exc),
                                   metrics=metrics)
            return
        # The validated input travels as upstream wrote it (no re-encoding),
        # with its own record timestamp, so the evaluator measures latency
        # from when upstream produced it.
        value = envelope_around(target.kind, raw)
        stamp_ms = int(message.timestamp * 1000) if message.timestamp else None
        key = target.key.encode()
        partitions = (every_partition if target.partition == BROADCAST
                      else (partition_for(target.key, settings.partitions),))
        for partition in partitions:
            pending.append(await producer.send(log_topic, key, value, partition,
                                               timestamp_ms=stamp_ms))
        accepted.inc()

    async def ingest(stream: faust.StreamT) -> None:
        # Batches: one broker round trip confirms a whole batch's records
        # before take_events acks (and later commits) its inputs.
        pending: list[Any] = []
        async for events in stream.take_events(settings.batch_max, settings.batch_within):
            for event in events:
                await forward(event, pending)
            if pending:
                await confirm_or_exit(producer, pending)

    app.agent(source, name=name)(ingest)
