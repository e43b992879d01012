"""Wires the runtime's batch evaluator (the only evaluator) into the Faust app.

The Faust app keeps the lifecycle, the web server and the light agents
(ingest); the evaluator is ``runtime.loop.BatchEvaluator``, started as an
app task once the topics exist, in its own consumer group
(``<prefix>-evaluator``), over its own partition stores under
``<data_dir>/evaluator``. No Faust tables and no clock ticks: due contacts
are woken by each partition's processor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

import faust

from agents.batch_evaluator import BatchEvaluatorHandle
from app.faust_app import Topics
from app.metrics import Metrics, dead_letter_reason
from app.settings import Settings
from app.topic_setup import topics_ready
from runtime.catalogs import CatalogCache
from runtime.evaluator_tracing import EvaluatorTracing
from runtime.loop import BatchEvaluator, LoopSettings, LoopTopics
from runtime.processor import Batch, ProcessorConfig

__all__ = ["evaluator_group", "register_batch_evaluator"]

log = logging.getLogger(__name__)


def evaluator_group(settings: Settings) -> str:
    """The batch evaluator's consumer group (the Faust app's is the prefix)."""
    return f"{settings.topic_prefix}-evaluator"


def loop_settings(settings: Settings) -> LoopSettings:
    config = ProcessorConfig(
        partitions=settings.partitions, clock=settings.clock,
        backfill_chunk=settings.backfill_chunk, due_batch=settings.due_batch,
        max_contact_state_bytes=settings.max_contact_state_bytes,
        history_retention_days=settings.history_retention_days)
    return LoopSettings(
        bootstrap=settings.bootstrap_servers, group_id=evaluator_group(settings),
        data_dir=settings.data_dir / "evaluator", processor=config, limits=settings.limits,
        batch_max=settings.batch_max, commit_interval=settings.commit_interval,
        linger_ms=settings.producer_linger_ms,
        dead_letter_max_bytes=settings.dead_letter_max_bytes,
        client_id=f"http://{settings.web_host}:{settings.web_port}",
        cache_bytes=settings.rocksdb_block_cache_bytes,
        write_buffer_bytes=settings.rocksdb_write_buffer_bytes,
        state_cache_bytes=settings.state_cache_bytes,
        changes_format=settings.changes_format, topic_prefix=settings.topic_prefix,
        standby_replicas=settings.standby_replicas,
        session_timeout_ms=settings.session_timeout_ms)


def loop_topics(settings: Settings) -> LoopTopics:
    names = settings.topics
    return LoopTopics(input=names.evaluator_input, changes=names.membership_changes,
                      snapshot=names.memberships, changelog=names.evaluator_state,
                      dead_letters=names.dead_letters)


def _event_time(body: dict[str, Any]) -> float | None:
    """An input's event time (seconds), as the evaluator's clock reads it."""
    raw = body.get("occurred_at") or body.get("updated_at") or body.get("at")
    try:
        return datetime.fromisoformat(raw).timestamp() if isinstance(raw, str) else None
    except ValueError:
        return None


def register_batch_evaluator(app: faust.App, topics: Topics, settings: Settings,
                             metrics: Metrics | None = None,
                             tracing: EvaluatorTracing | None = None) -> BatchEvaluatorHandle:
    metrics = metrics or Metrics()

    def observe(partition: int, batch: Batch, records: list[Any],
                inputs: list[tuple[str, dict[str, Any]]], seconds: float) -> None:
        # Evaluated per batch: each input is counted with the batch's mean.
        for _ in records:
            metrics.evaluation_seconds.observe(seconds / len(records))
        metrics.count_changes(batch.changes)
        for index in batch.emitted_by:
            metrics.observe_latency(_event_time(inputs[index][1]), records[index].timestamp / 1000)
        for refusal in batch.refused:
            if refusal.report:
                metrics.dead_letters.labels(dead_letter_reason(refusal.reason)).inc()

    loop = BatchEvaluator(loop_settings(settings), loop_topics(settings), on_batch=observe,
                          tracing=tracing)
    # Stored definitions that cannot be loaded back are quarantined
    # (runtime/catalogs.py): counted once per definition and reason.
    loop.catalogs = CatalogCache(settings.limits,
                                 on_quarantine=lambda *_: metrics.segments_quarantined.inc())
    handle = BatchEvaluatorHandle(loop, partitions=settings.partitions, clock=settings.clock,
                                  changelog=settings.topics.evaluator_state)

    @app.task
    async def _start_batch_evaluator() -> None:
        while not topics_ready(app):  # the input log and changelog must exist first
            await asyncio.sleep(0.05)
        started = time.monotonic()
        await loop.start()
        log.info("batch evaluator started (group %s) in %.2f s", evaluator_group(settings),
                 time.monotonic() - started)

    @app.on_before_shutdown.connect
    async def _stop_batch_evaluator(*_: Any, **__: Any) -> None:
        await loop.stop()

    metrics.watch(handle)
    return handle
