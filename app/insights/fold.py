"""The insights fold: a plain aiokafka consumer (no group, nothing committed
to Kafka) that reads every partition of the membership-changes topic and
folds it into the worker's ``InsightsStore``, resuming from the offsets
stored with the series.

Every worker folds the whole topic into its own store, so each one holds
the complete series and answers from its own disk, with no call to peers
and nothing to rebalance; workers that read the same log agree
(docs/insights.md says why this over a partitioned table). The topic is
written only by the evaluators, at a rate bounded by the inputs; the fold
is a few dictionary updates per change and one RocksDB write per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import faust

from app.insights.store import InsightsStore
from app.settings import Settings
from app.topic_setup import topics_ready

__all__ = ["InsightsFold", "register_insights_fold"]

log = logging.getLogger(__name__)

# Records per fetch (all partitions together), folded and written in one go
# on the event loop the evaluator shares: 500 new pairs take ~11 ms here.
_MAX_RECORDS = 500


class InsightsFold:
    def __init__(self, bootstrap: str, topic: str, partitions: int, path: Path,
                 retention_days: int) -> None:
        self._bootstrap, self._topic, self._partitions = bootstrap, topic, partitions
        self._path, self._retention_days = path, retention_days
        self.store: InsightsStore | None = None
        self._consumer: Any = None
        self.folded = 0  # changes applied since this worker started
        self.started = False

    def behind(self) -> int | None:
        """Changes on the topic not yet folded, as of the last fetch (None
        before the first)."""
        consumer = self._consumer
        if consumer is None:
            return None
        total = 0
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                return None
            position = (self.store.offsets().get(tp.partition, 0)
                        if self.store is not None else 0)
            total += max(0, high - position)
        return total

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        self.store = InsightsStore(self._path, self._retention_days)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", client_id="segmentflow-insights")
        await consumer.start()
        try:
            known = consumer.partitions_for_topic(self._topic)
            partitions = sorted(known) if known else range(self._partitions)
            tps = [TopicPartition(self._topic, p) for p in partitions]
            consumer.assign(tps)
            stored = self.store.offsets()
            fresh = [tp for tp in tps if tp.partition not in stored]
            if fresh:
                earliest = await consumer.beginning_offsets(fresh)
                if any(offset > 0 for offset in earliest.values()):
                    log.warning("insights: %s no longer holds its first changes (retention): "
                                "the series' sizes count only the changes folded from here",
                                self._topic)
                    self.store.mark_history_incomplete()
            for tp in tps:
                if tp.partition in stored:
                    consumer.seek(tp, stored[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
            self._consumer = consumer
            self.started = True
            log.info("insights: folding %s from %s", self._topic,
                     {p: stored.get(p, 0) for p in partitions})
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=_MAX_RECORDS)
                records = [(tp.partition, r.offset, r.value)
                           for tp, rs in batches.items() for r in rs]
                if records:
                    started = time.monotonic()
                    applied, dropped, unreadable = self.store.fold(records)
                    self.folded += applied
                    if unreadable:
                        log.warning("insights: %d records of %s are not membership changes; "
                                    "skipped", unreadable, self._topic)
                    log.debug("insights: folded %d records (%d replays dropped) in %.1f ms",
                              len(records), dropped, (time.monotonic() - started) * 1000)
                    await asyncio.sleep(0)  # one batch at a time: the API gets its turn
        finally:
            self._consumer = None
            with contextlib.suppress(Exception):
                await consumer.stop()

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None


def register_insights_fold(app: faust.App, settings: Settings) -> InsightsFold:
    fold = InsightsFold(settings.bootstrap_servers, settings.topics.membership_changes,
                        settings.partitions,
                        # One store per topic: a data directory reused with another
                        # prefix (the demo's are fresh each run) starts a series of its own.
                        settings.data_dir / "insights" / settings.topics.membership_changes,
                        settings.insights_retention_days)
    task: asyncio.Task[None] | None = None

    @app.task
    async def _start_insights_fold() -> None:
        nonlocal task
        while not topics_ready(app):  # the changes topic must exist first
            await asyncio.sleep(0.05)
        task = asyncio.create_task(_run_forever(fold), name="insights-fold")

    @app.on_before_shutdown.connect
    async def _stop_insights_fold(*_: Any, **__: Any) -> None:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        fold.close()

    return fold


async def _run_forever(fold: InsightsFold) -> None:
    while True:
        try:
            await fold.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("insights: the fold failed; restarting from the stored offsets")
            fold.close()
            await asyncio.sleep(1.0)  # a broker that is away: retry pacing, not a wait
