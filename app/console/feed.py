"""The console's live feed: membership changes as they happen, fanned out to
server-sent-event subscribers.

One plain aiokafka consumer per worker (no group, nothing committed) tails
the membership-changes topic, every partition, from its end. It is started
when the first console subscribes and stopped when the last one leaves.
Tailing the topic, not this worker's own emissions, is what makes the feed
complete with several workers: each worker only emits the changes of the
partitions it holds, but every change reaches the topic.

Each subscriber has a bounded queue: a browser that reads too slowly loses
changes (counted and reported to it as ``dropped``) instead of making the
worker buffer without limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from models.change_events import native_change

__all__ = ["ChangeFeed", "Subscription", "sse_event"]

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000


def sse_event(event: str, data: bytes) -> bytes:
    """One server-sent event (``data`` is one line of JSON)."""
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


@dataclass(eq=False)
class Subscription:
    segment_id: str | None  # None: every segment
    queue: asyncio.Queue[bytes | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: int = 0

    def offer(self, segment_id: str | None, value: bytes) -> None:
        if self.segment_id is not None and segment_id != self.segment_id:
            return
        try:
            self.queue.put_nowait(value)
        except asyncio.QueueFull:
            self.dropped += 1

    def close(self) -> None:
        """Wake the reader with the end marker, even when the queue is full."""
        while True:
            try:
                self.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                self.queue.get_nowait()
                self.dropped += 1


class ChangeFeed:
    def __init__(self, bootstrap_servers: str, topic: str, partitions: int) -> None:
        self._bootstrap, self._topic, self._partitions = bootstrap_servers, topic, partitions
        self._subscribers: set[Subscription] = set()
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def subscribe(self, segment_id: str | None) -> Subscription:
        """A subscription that receives every change written to the topic
        after this returns (the consumer's positions are resolved first)."""
        async with self._lock:
            if self._closed:
                raise RuntimeError("the feed is closed (the worker is stopping)")
            if self._consumer is None:
                await self._start()
            sub = Subscription(segment_id)
            self._subscribers.add(sub)
            return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        async with self._lock:
            self._subscribers.discard(sub)
            if not self._subscribers:
                await self._stop()

    async def close(self) -> None:
        """Worker shutdown: end every stream (so the web server is not kept
        waiting for them) and stop the consumer."""
        async with self._lock:
            self._closed = True
            for sub in self._subscribers:
                sub.close()
            self._subscribers.clear()
            await self._stop()

    async def _start(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="latest")
        try:
            await consumer.start()
            known = consumer.partitions_for_topic(self._topic)
            partitions = sorted(known) if known else range(self._partitions)
            tps = [TopicPartition(self._topic, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            for tp in tps:  # resolve the positions now: what follows is seen
                await consumer.position(tp)
        except BaseException:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(consumer), name="console-change-feed")

    async def _stop(self) -> None:
        task, consumer = self._task, self._consumer
        self._task = self._consumer = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _run(self, consumer: Any) -> None:
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("console feed: reading %s failed; retrying", self._topic)
                await asyncio.sleep(1.0)
                continue
            for records in batches.values():
                for record in records:
                    self._dispatch(record.value)

    def _dispatch(self, value: bytes | None) -> None:
        if value is None:
            return
        try:
            change = native_change(value)  # native, or a CloudEvent's data
            segment_id = change.get("segment_id")
        except (orjson.JSONDecodeError, AttributeError):
            return  # not a membership change: nothing to show
        if b"\n" in value or b'"specversion"' in value:  # one line, the change alone
            value = orjson.dumps(change)
        for sub in self._subscribers:
            sub.offer(segment_id, value)
