"""The event-type declarations every worker holds, read from the compacted
``<prefix>.event-types`` topic (one partition, key: the type's name,
value: an ``EventTypeDeclaration``, a tombstone brings the built-in
declaration back) on top of the built-in ones.

Each worker reads the topic from its start with a plain aiokafka consumer
(no group: every worker reads all of it) and follows it. Ingest waits for
the first read to reach the end before it handles any input, so a worker
never refuses an interaction whose type was declared before it started;
and before it dead-letters an interaction for its type, it catches up once
more (``catch_up``: reads up to the topic's end offset at that moment), so
a declaration acknowledged before the interaction was handled is always
seen. The API does the same before it refuses a definition or numbers a
declaration's version.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from agents.dead_letters import describe_error
from models.cloudevents import (
    CloudEventProblem,
    binary_attributes,
    from_binary,
    interaction_from_cloudevent,
    is_structured,
)
from models.event_types import (
    EventTypeDeclaration,
    EventTypeRegistry,
    declaration_help,
    is_event_type_name,
)
from models.inputs import Interaction

__all__ = [
    "CloudEventProblem", "EventTypeFeed", "EventTypeProblem", "InteractionGate", "decode_record",
    "read_registry",
]

log = logging.getLogger(__name__)


def decode_record(key: bytes | None, value: bytes | None
                  ) -> tuple[str, EventTypeDeclaration | None] | str:
    """``(name, declaration or None for a tombstone)``, or why the record
    is ignored."""
    try:
        name = key.decode() if key is not None else None
    except UnicodeDecodeError:
        name = None
    if value is None:
        if name is None or not is_event_type_name(name):
            return f"tombstone with key {key!r} is not an event type name"
        return name, None
    try:
        declaration = EventTypeDeclaration.model_validate_json(value)
    except ValidationError as exc:
        return f"not an event type declaration: {str(exc)[:300]}"
    if name is not None and name != declaration.name:
        return f"key {name!r} differs from the declaration's name {declaration.name!r}"
    return declaration.name, declaration


class EventTypeFeed:
    """The registry of one worker, kept up to date from the topic."""

    def __init__(self, bootstrap_servers: str, topic: str,
                 registry: EventTypeRegistry | None = None,
                 topics_declared: Callable[[], bool] = lambda: True) -> None:
        self.topic = topic
        self._bootstrap = bootstrap_servers
        self._topics_declared = topics_declared
        self.registry = registry if registry is not None else EventTypeRegistry()
        self._position = 0  # next offset to read
        self._loaded = asyncio.Event()
        self._advanced = asyncio.Event()
        self._consumer: Any = None
        self._stopped = False

    @classmethod
    def fixed(cls, registry: EventTypeRegistry | None = None) -> EventTypeFeed:
        """A feed that never reads a topic: ``registry`` (the built-in
        declarations by default), loaded at once (tests without a broker)."""
        feed = cls("", "", registry)
        feed._loaded.set()
        return feed

    @property
    def loaded(self) -> bool:
        """True once the first read reached the topic's end."""
        return self._loaded.is_set()

    async def wait_loaded(self, timeout: float | None = None) -> bool:
        """Wait until loaded (at most ``timeout`` seconds); whether it is."""
        if timeout is None:
            await self._loaded.wait()
            return True
        try:
            await asyncio.wait_for(self._loaded.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def apply(self, offset: int, key: bytes | None, value: bytes | None) -> None:
        """One record of the topic (in offset order)."""
        decoded = decode_record(key, value)
        if isinstance(decoded, str):
            log.warning("event-types %s@%s ignored: %s", self.topic, offset, decoded)
        else:
            name, declaration = decoded
            before = self.registry
            self.registry = before.with_record(name, declaration)
            if self.registry is before and declaration is not None:
                log.warning("event-types %s@%s ignored: version %s of %r is not newer than "
                            "the one held", self.topic, offset, declaration.version, name)
        self._position = offset + 1

    async def run(self) -> None:
        """Read and follow the topic until stopped; after an error (the
        broker gone), start again where it left off."""
        while not self._topics_declared():
            await asyncio.sleep(0.05)
        while not self._stopped:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event types: reading %s failed; retrying in 1 s", self.topic)
                await asyncio.sleep(1.0)

    async def _follow(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        tp = TopicPartition(self.topic, 0)
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([tp])
            if self._position:
                consumer.seek(tp, self._position)
            else:
                await consumer.seek_to_beginning(tp)
            start_end = (await consumer.end_offsets([tp]))[tp]
            self._consumer = consumer
            if start_end <= self._position:
                self._loaded.set()
            while not self._stopped:
                fetched = await consumer.getmany(tp, timeout_ms=500, max_records=1000)
                for record in fetched.get(tp, ()):
                    self.apply(record.offset, record.key, record.value)
                # The consumer's position passes gaps that compaction or
                # transaction markers leave, where record offsets would not.
                position = await consumer.position(tp)
                moved = bool(fetched.get(tp)) or position > self._position
                self._position = max(self._position, position)
                if moved:
                    self._advanced.set()
                    self._advanced = asyncio.Event()
                if not self._loaded.is_set() and self._position >= start_end:
                    log.info("event types loaded: %d in force (%s)", len(self.registry.names()),
                             ", ".join(self.registry.names()[:20]))
                    self._loaded.set()
        finally:
            self._consumer = None
            await consumer.stop()

    async def stop(self) -> None:
        self._stopped = True

    async def catch_up(self, timeout: float = 5.0) -> bool:
        """Read the topic up to its end offset as of now; False if that did
        not happen within ``timeout`` seconds (or the feed is not running)."""
        from aiokafka import TopicPartition

        consumer = self._consumer
        if consumer is None:
            return False
        tp = TopicPartition(self.topic, 0)
        try:
            end = (await asyncio.wait_for(consumer.end_offsets([tp]), timeout))[tp]
        except Exception:  # the broker is slow or gone: keep what we hold
            log.warning("event types: end offset unavailable", exc_info=True)
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._position < end:
            left = deadline - loop.time()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._advanced.wait(), left)
            except TimeoutError:
                return False
        return True


class EventTypeProblem(ValueError):
    """An interaction refused for its event type (undeclared, retired, or a
    property that violates the declaration): it depends on the
    declarations, so ingest catches up with the topic once before it
    dead-letters one."""


_INTERACTION = TypeAdapter(Interaction)
_INTERACTION_TIME = TypeAdapter(AwareDatetime)


class InteractionGate:
    """Decodes an upstream interaction (or a CloudEvent standing for one,
    models/cloudevents.py) and checks it against the event types in force:
    ``decode(raw, message) -> (Interaction, bytes to forward)``. Raises
    ``EventTypeProblem`` for an event-type problem, ``CloudEventProblem``
    for a CloudEvent that cannot be an interaction, and pydantic's
    ``ValidationError`` (or orjson's error) for anything else."""

    def __init__(self, feed: EventTypeFeed, accept_undeclared: bool = False) -> None:
        self.feed = feed
        self.accept_undeclared = accept_undeclared

    async def refresh(self) -> None:
        await self.feed.catch_up()

    def decode(self, raw: bytes, message: Any = None) -> tuple[Interaction, bytes]:
        registry = self.feed.registry
        headers = getattr(message, "headers", None)
        attributes = binary_attributes(headers) if headers else None
        if attributes is not None:  # binary mode: ce_* headers, the data in the value
            try:
                data = orjson.loads(raw) if raw.strip() else None
            except orjson.JSONDecodeError as exc:
                raise CloudEventProblem(f"CloudEvent data is not JSON: {exc}") from None
            return self._mapped(registry, from_binary(attributes, data))
        try:
            model: Interaction = _INTERACTION.validate_json(raw)
        except ValidationError as invalid:
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise invalid from None  # pydantic's error says it all (NaN, syntax…)
            if is_structured(doc, headers):
                return self._mapped(registry, doc)
            # A declared time property may stand in for a missing occurred_at.
            filled = self._with_time_from_property(registry, doc)
            if filled is None:
                raise
            model, raw = filled
        return self._checked(registry, model, raw)

    def _mapped(self, registry: EventTypeRegistry, event: Any) -> tuple[Interaction, bytes]:
        """A CloudEvent (structured form) as a checked interaction."""

        def resolve(ce_type: str) -> str:
            found = registry.for_cloudevents_type(ce_type)
            if found is None:
                shown = ce_type if len(ce_type) <= 120 else ce_type[:120] + "…"
                raise EventTypeProblem(
                    f'undeclared CloudEvents type "{shown}": no event type lists it in '
                    f"cloudevents_types; {declaration_help('<name>', self.feed.topic or None)}")
            return found

        doc = interaction_from_cloudevent(event, resolve)
        raw = orjson.dumps(doc)
        try:
            model = _INTERACTION.validate_json(raw)
        except ValidationError as exc:
            filled = self._with_time_from_property(registry, doc)
            if filled is None:
                raise CloudEventProblem(
                    f"CloudEvent as an interaction (subject: contact_id, id: event_id, time: "
                    f"occurred_at, data: properties): {describe_error(exc)}") from None
            model, raw = filled
        return self._checked(registry, model, raw)

    def _checked(self, registry: EventTypeRegistry, model: Interaction, raw: bytes
                 ) -> tuple[Interaction, bytes]:
        decl = registry.get(model.type)
        if decl is None or decl.retired:
            if decl is not None or not self.accept_undeclared:
                raise EventTypeProblem(registry.undeclared_reason(model.type, self.feed.topic))
            return model, raw
        problem = registry.property_problem(model.type, model.properties)
        if problem is not None:
            raise EventTypeProblem(problem)
        prop = decl.time_property
        given = model.properties.get(prop) if prop is not None else None
        if given is not None:  # absent: occurred_at (which the model required) stands
            at = _INTERACTION_TIME.validate_python(given)
            if at != model.occurred_at:  # the declared time field wins
                doc = orjson.loads(raw)
                doc["occurred_at"] = given
                raw = orjson.dumps(doc)
                model = _INTERACTION.validate_json(raw)
        return model, raw

    @staticmethod
    def _with_time_from_property(registry: EventTypeRegistry, doc: Any
                                 ) -> tuple[Interaction, bytes] | None:
        if not isinstance(doc, dict) or "occurred_at" in doc:
            return None
        kind, props = doc.get("type"), doc.get("properties")
        decl = registry.get(kind) if isinstance(kind, str) else None
        prop = decl.time_property if decl is not None and not decl.retired else None
        if prop is None:
            return None
        if not isinstance(props, dict) or props.get(prop) is None:
            raise EventTypeProblem(
                f'event type "{kind}" (version {decl.version}): property {prop!r} is required: '  # type: ignore[union-attr]
                "it is the type's time field (occurred_at is not given)")
        doc = {**doc, "occurred_at": props[prop]}
        raw = orjson.dumps(doc)
        return _INTERACTION.validate_json(raw), raw


async def read_registry(bootstrap_servers: str, topic: str, timeout: float = 10.0
                        ) -> EventTypeRegistry:
    """The declarations in force as of now: the built-in ones and the
    topic's, read to its end once (for one-shot tools, e.g. ``segmentflow
    produce``). A topic that does not exist yet holds none."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    feed = EventTypeFeed(bootstrap_servers, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            return feed.registry
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while await consumer.position(tp) < end:
            if loop.time() > deadline:
                raise TimeoutError(f"reading {topic} took more than {timeout} s")
            fetched = await consumer.getmany(tp, timeout_ms=500, max_records=1000)
            for record in fetched.get(tp, ()):
                feed.apply(record.offset, record.key, record.value)
        return feed.registry
    finally:
        await consumer.stop()
