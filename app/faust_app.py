"""Builds the Faust app: topics, tables and agents. Nothing else lives here."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TableT, TopicT

from app.memory import TRIM_INTERVAL, limit_fragmentation, malloc_trim
from app.settings import Settings

__all__ = ["Tables", "Topics", "create_app"]


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


@dataclass(frozen=True)
class Tables:
    # contact_id -> engine.ContactState bytes (the evaluator is the only writer)
    contacts: TableT
    # "<partition>:<segment_id>" -> SegmentDefinition JSON, replicated into every
    # partition by broadcast commands so each partition replays on its own.
    segments: TableT
    # "<partition>:<account_id>" -> account attributes JSON, replicated likewise.
    accounts: TableT
    # "<partition>:<account_id>" -> JSON list of this partition's contacts.
    account_contacts: TableT
    # contact_id -> next due instant (µs since epoch), for clock ticks.
    due: TableT
    # "<partition>:<segment_id>" -> backfill progress of that partition.
    backfills: TableT
    # "<partition>" -> that partition's event clock (event-time mode only).
    clock: TableT


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


_SMALL_TABLE_BYTES = 2**20  # memtable and cache of the tables that stay small


def _store_options(settings: Settings, *, big: bool) -> dict[str, Any] | None:
    """rocksdict with bounded memory (see Settings.rocksdb_write_buffer_bytes)."""
    if not settings.store.startswith("rocksdb"):
        return None
    write_buffer = settings.rocksdb_write_buffer_bytes if big else _SMALL_TABLE_BYTES
    cache = settings.rocksdb_block_cache_bytes if big else _SMALL_TABLE_BYTES
    return {"driver": "rocksdict", "write_buffer_size": write_buffer,
            "max_write_buffer_number": 2, "block_cache_size": cache,
            "target_file_size_base": 4 * write_buffer}


def _declare_tables(app: faust.App, settings: Settings) -> Tables:
    def table(name: str, *, big: bool = False) -> TableT:
        # str keys (JSON-encoded, as Faust does for both the store and the
        # changelog, which recovery relies on), raw bytes values: the engine
        # owns its state encoding. Faust derives serializers from the types,
        # so the value serializer is set before the store or changelog exist.
        created = app.Table(
            name,
            key_type=str,
            value_type=bytes,
            partitions=settings.partitions,
            options=_store_options(settings, big=big),
        )
        created.value_serializer = "raw"
        return created

    return Tables(
        contacts=table("contacts", big=True),
        segments=table("segments"),
        accounts=table("accounts"),
        account_contacts=table("account-contacts", big=True),
        due=table("due", big=True),
        backfills=table("backfills"),
        clock=table("clock"),
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
    from agents.clock import register_clock
    from agents.evaluator import register_evaluator
    from agents.ingest import register_ingest
    from app.batch_evaluator import register_batch_evaluator
    from app.metrics import Metrics
    from app.topic_setup import register_topic_setup, topics_ready
    from app.web import register_web, web_application_options

    settings = settings or Settings()
    metrics = Metrics(segment_labels=settings.metrics_segment_labels)
    app = faust.App(
        settings.topic_prefix,
        broker=_broker_urls(settings.bootstrap_servers),
        store=settings.store,
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
        table_standby_replicas=1,
        producer_linger_ms=settings.producer_linger_ms,
        topic_allow_declare=True,
        web_in_thread=False,
        web_application_options=web_application_options(settings),
        # Seeks taken-over partitions before resuming them (see app/recovery.py).
        TableManager="app.recovery:SeekFirstTableManager",
        # Tables keep their changelog futures for the evaluator to wait on.
        Table="agents.buffered_tables:ChangelogTrackingTable",
    )
    topics = _declare_topics(app, settings)
    register_topic_setup(app, topics)
    event_types = register_event_types(app, topics, settings, lambda: topics_ready(app))
    tracing = register_tracing(app, settings)  # None unless configured (docs/tracing.md)
    register_ingest(app, topics, settings, metrics, lambda: topics_ready(app), event_types,
                    tracing.ingest if tracing is not None else None)
    evaluator: Any
    if settings.evaluator == "batch":
        # The runtime's batch loop: its own stores, no Faust tables, no ticks.
        evaluator = register_batch_evaluator(
            app, topics, settings, metrics, tracing.evaluator if tracing is not None else None)
    else:
        tables = _declare_tables(app, settings)
        evaluator = register_evaluator(app, topics, tables, settings, metrics)
        register_clock(app, topics, settings)
    register_memory_trim(app)
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
