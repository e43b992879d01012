"""Offset commits off the hot path (Kafka Streams' ``commit.interval.ms``).

A batch loop that awaited its offset commit after every batch paid a broker
round trip per batch before it could fetch the next one (6-7 ms of a 15 ms
ingest cycle on the 2-core host; bench/README.md, latency). Here the loop
only records what it has handled; a background task commits the newest
handled offsets at most every ``interval`` seconds, and at once when
partitions are revoked or the loop stops. Only offsets whose inputs are
fully handled (forwarded or dead-lettered, acknowledged) are ever passed
in, so a commit never runs ahead of the work; what a crash leaves
uncommitted is replayed, as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition

from runtime.tasks import cancel_and_wait

__all__ = ["IntervalCommitter"]

log = logging.getLogger(__name__)


class IntervalCommitter(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits a consumer's handled offsets in the background."""

    def __init__(self, interval: float,
                 settle: Callable[[], Awaitable[None]] | None = None) -> None:
        """``settle``: waits until the work in flight is handled (called
        before the offsets of revoked partitions are committed, so their next
        owner starts after it rather than replaying it)."""
        self.interval = interval
        self._settle = settle
        self.consumer: Any = None  # set by ``start`` (created inside the event loop)
        self._pending: dict[TopicPartition, int] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one commit request at a time
        self._last = 0.0
        self._task: asyncio.Task[None] | None = None
        self.commits = 0  # commit requests that succeeded (tests, metrics)

    def start(self, consumer: Any) -> None:
        self.consumer = consumer
        self._task = asyncio.create_task(self._run(), name="ingest-offset-committer")

    def handled(self, offsets: dict[TopicPartition, int]) -> None:
        """``offsets``: the next offset to read per partition, every input
        before it handled."""
        if offsets:
            self._pending.update(offsets)
            self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            delay = self._last + self.interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.commit_pending()

    async def commit_pending(self, only: Iterable[TopicPartition] | None = None) -> None:
        """Commit what is handled now (``only``: of those partitions)."""
        async with self._lock:
            if only is None:
                offsets, self._pending = self._pending, {}
            else:
                offsets = {tp: self._pending.pop(tp) for tp in list(only) if tp in self._pending}
            if self.consumer is None:
                return
            # A partition revoked while its batch was handled is not ours to
            # commit (aiokafka refuses the whole request): its next owner replays.
            assigned = self.consumer.assignment()
            offsets = {tp: offset for tp, offset in offsets.items() if tp in assigned}
            if not offsets:
                return
            self._last = time.monotonic()
            try:
                await self.consumer.commit(offsets)
                self.commits += 1
            except Exception:  # rebalancing: the next owner replays, forwards are idempotent
                log.warning("ingest offset commit failed", exc_info=True)
                for tp, offset in offsets.items():  # retried, unless newer ones came meanwhile
                    self._pending.setdefault(tp, offset)

    async def stop(self) -> None:
        """Commit what is pending, then stop the background task."""
        await cancel_and_wait(self._task)
        self._task = None
        await self.commit_pending()

    # -- ConsumerRebalanceListener ---------------------------------------------------

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if self._settle is not None:
            await self._settle()
        await self.commit_pending(only=revoked)
        for tp in revoked:  # not ours any more: never retried
            self._pending.pop(tp, None)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None
