"""Standby copies: local stores of partitions another member evaluates,
kept current by tailing their changelog (Kafka Streams' standby tasks).

The copy is written exactly as a restore writes (runtime/restore.py: one
write batch per chunk, advancing the checkpoint), so when this member is
later assigned the partition, its restore starts at the checkpoint and
reads only what the standby had not seen yet. A standby never evaluates
and never produces.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from runtime.restore import apply_changelog
from runtime.store import PartitionStore, Store
from runtime.tasks import cancel_and_wait

__all__ = ["StandbyCopies"]

log = logging.getLogger(__name__)


class StandbyCopies:
    """Tails the changelog partitions of the standby set into ``store``."""

    def __init__(self, store: Store, bootstrap: str, changelog: str) -> None:
        self._store, self._bootstrap, self._changelog = store, bootstrap, changelog
        self._open: dict[int, PartitionStore] = {}
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.applied = 0  # changelog records written to standby copies
        self.progress = asyncio.Condition()  # notified after each applied fetch

    @property
    def partitions(self) -> set[int]:
        return set(self._open)

    def checkpoints(self) -> dict[int, int | None]:
        return {p: s.checkpoint() for p, s in self._open.items()}

    def lag(self) -> dict[int, int]:
        """Changelog records each copy has not applied yet, from the last
        fetch's high watermark (a copy not fetched yet is left out)."""
        lag: dict[int, int] = {}
        consumer = self._consumer
        if consumer is None:
            return lag
        for p, copy in self._open.items():
            high = consumer.highwater(TopicPartition(self._changelog, p))
            if high is not None:
                checkpoint = copy.checkpoint()
                lag[p] = max(0, high - (0 if checkpoint is None else checkpoint + 1))
        return lag

    async def start(self, partitions: set[int]) -> None:
        """Open the copies and tail their changelog (after ``stop``)."""
        if not partitions:
            return
        for p in sorted(partitions):
            self._open[p] = self._store.assign(p)
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        self._consumer = consumer
        consumer.assign([TopicPartition(self._changelog, p) for p in self._open])
        for p, copy in self._open.items():
            checkpoint = copy.checkpoint()
            consumer.seek(TopicPartition(self._changelog, p),
                          0 if checkpoint is None else checkpoint + 1)
        self._task = asyncio.create_task(self._tail(consumer), name="standby-copies")

    async def stop(self) -> None:
        """Stop tailing and close the copies (their files and checkpoints stay)."""
        await cancel_and_wait(self._task)
        self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        for p in list(self._open):
            self._store.revoke(p)
        self._open.clear()

    async def _tail(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                fetched = await consumer.getmany(timeout_ms=500, max_records=5000)
            except asyncio.CancelledError:
                raise
            except Exception:  # the broker away for a while: the copy just lags
                log.warning("standby fetch failed; retrying", exc_info=True)
                await asyncio.sleep(1)
                continue
            for tp, records in fetched.items():
                copy = self._open.get(tp.partition)
                if copy is None or not records:
                    continue
                result = apply_changelog(copy, [(r.offset, r.key, r.value) for r in records])
                self.applied += result.applied
            if fetched:
                async with self.progress:
                    self.progress.notify_all()
