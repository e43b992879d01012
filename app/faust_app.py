"""Builds the Faust app: topics, agents and tasks. Nothing else lives here.

The app holds no Faust tables: the evaluator's state lives in the batch
evaluator's own partition stores (app/batch_evaluator.py, runtime/)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TopicT

from app.memory import TRIM_INTERVAL, limit_fragmentation, malloc_trim
from app.settings import Settings

__all__ = ["Topics", "create_app"]


@dataclass(frozen=True)
class Topics:
    contacts: TopicT
    accounts: TopicT
    interactions: TopicT
    segment_definitions: TopicT
    static_edits: TopicT
    evaluator_input: TopicT
    membership_changes: TopicT
    memberships: TopicT
    dead_letters: TopicT
    evaluator_state: TopicT  # the batch evaluator's changelog (compacted)
    event_types: TopicT  # event-type declarations (compacted, one partition)


def _broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


def _declare_topics(app: faust.App, settings: Settings) -> Topics:
    names = settings.topics

    def topic(name: str, *, compacted: bool = False, partitions: int | None = None) -> TopicT:
        # Raw bytes in and out: we validate with pydantic, not Faust models,
        # so that bad input can be dead-lettered with a precise reason.
        # internal=True: the worker creates the topic (with our partition
        # count) when it is missing, so a fresh broker just works.
        return app.topic(
            name,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions or settings.partitions,
            compacting=compacted or None,
            internal=True,
        )

    return Topics(
        contacts=topic(names.contacts),
        accounts=topic(names.accounts),
        interactions=topic(names.interactions),
        segment_definitions=topic(names.segment_definitions),
        static_edits=topic(names.static_edits),
        evaluator_input=topic(names.evaluator_input),
        membership_changes=topic(names.membership_changes),
        memberships=topic(names.memberships, compacted=True),
        dead_letters=topic(names.dead_letters),
        evaluator_state=topic(names.evaluator_state, compacted=True),
        event_types=topic(names.event_types, compacted=True, partitions=1),
    )


def register_memory_trim(app: faust.App) -> None:
    """Return freed heap pages to the OS once a minute, and keep large
    blocks out of the heap (see app.memory)."""
    limit_fragmentation()

    @app.timer(interval=TRIM_INTERVAL)
    async def _trim_heap() -> None:
        malloc_trim()

    from app.memory_debug import from_env

    debug = from_env()  # SEGMENTFLOW_MEMORY_DEBUG=<file>: debug only (app/memory_debug.py)
    if debug is not None:
        dumper, interval = debug

        @app.timer(interval=interval)
        async def _dump_memory() -> None:
            try:
                dumper.dump()
            except Exception:  # debug only: never stop the worker
                logging.getLogger(__name__).exception("memory debug dump failed")


def create_app(settings: Settings | None = None) -> faust.App:
    from agents.ingest import register_ingest
    from app.api.ops import register_ingest_ops
    from app.batch_evaluator import register_batch_evaluator
    from app.metrics import Metrics
    from app.topic_setup import register_topic_setup, topics_ready
    from app.web import register_web, web_application_options

    settings = settings or Settings()
    metrics = Metrics(segment_labels=settings.metrics_segment_labels)
    app = faust.App(
        settings.topic_prefix,
        broker=_broker_urls(settings.bootstrap_servers),
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        web_host=settings.web_host,
        web_port=settings.web_port,
        processing_guarantee=settings.processing_guarantee,
        # Broker minimum is 6 s; keep rebalances after a crash short.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        # Workers starting together create topics while the other's consumer
        # subscribes: the group leader skips topics missing from its metadata
        # and only sees them at the next refresh (default 300 s, during which
        # those partitions are nobody's). Refresh every 5 s instead.
        consumer_metadata_max_age_ms=5000,
        producer_linger_ms=settings.producer_linger_ms,
        topic_allow_declare=True,
        web_in_thread=False,
        web_application_options=web_application_options(settings),
    )
    topics = _declare_topics(app, settings)
    register_topic_setup(app, topics)
    event_types = register_event_types(app, topics, settings, lambda: topics_ready(app))
    tracing = register_tracing(app, settings)  # None unless configured (docs/tracing.md)
    register_memory_trim(app)
    if settings.role != "evaluator":
        consuming = register_ingest(app, topics, settings, metrics, lambda: topics_ready(app),
                                    event_types, tracing.ingest if tracing is not None else None)
        if settings.role == "ingest":  # no evaluator, no API: ops endpoints only
            register_ingest_ops(app, metrics, consuming)
            return app
    # The runtime's batch loop: its own stores, no Faust tables, no ticks.
    evaluator = register_batch_evaluator(
        app, topics, settings, metrics, tracing.evaluator if tracing is not None else None)
    register_web(app, evaluator, topics, settings, metrics, event_types)
    return app


def register_tracing(app: faust.App, settings: Settings) -> Any:
    """The worker's tracing (app/tracing.py), flushed at shutdown; None
    when it is off."""
    from agents.ingest import ingest_group
    from app.batch_evaluator import evaluator_group
    from app.tracing import start_tracing

    tracing = start_tracing(settings, ingest_group=ingest_group(settings),
                            evaluator_group=evaluator_group(settings))
    if tracing is not None:
        @app.on_before_shutdown.connect
        async def _stop_tracing(*_: Any, **__: Any) -> None:
            await asyncio.to_thread(tracing.flush)  # exports what is queued

    return tracing


def register_event_types(app: faust.App, topics: Topics, settings: Settings,
                         topics_declared: Any) -> Any:
    """The worker's event-type declarations, read from the event-types topic
    (agents/event_types.py) by a task of its own."""
    from agents.event_types import EventTypeFeed

    feed = EventTypeFeed(settings.bootstrap_servers, topics.event_types.get_topic_name(),
                         topics_declared=topics_declared)

    @app.task
    async def _event_types() -> None:
        await feed.run()

    @app.on_before_shutdown.connect
    async def _stop_event_types(*_: Any, **__: Any) -> None:
        await feed.stop()

    return feed
