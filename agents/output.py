"""Ingest's own producer: a plain aiokafka producer, one per upstream topic,
for the records it forwards to the evaluator's log and its dead letters.

Faust's ``Topic.send`` costs far more per record than aiokafka's ``send``
(sensors, attachments, its own buffer — about a third of the former Faust
evaluator's CPU in a py-spy profile), and ingest needs none of that: it
sends, collects the delivery futures, and waits for them once per batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer

from app.settings import Settings

__all__ = ["OutputProducer", "confirm_or_exit"]

log = logging.getLogger(__name__)


class OutputProducer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            async with self._lock:
                if self._producer is None:
                    producer = AIOKafkaProducer(
                        bootstrap_servers=self._settings.bootstrap_servers,
                        acks="all",
                        enable_idempotence=True,  # broker drops retried duplicates
                        linger_ms=self._settings.producer_linger_ms,
                    )
                    await producer.start()
                    self._producer = producer
        return self._producer

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None,
        timestamp_ms: int | None = None, headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future:
        """Queue one record; the returned future resolves when it is acked."""
        producer = await self._started()
        return await producer.send(topic, value=value, key=key, partition=partition,
                                   timestamp_ms=timestamp_ms, headers=headers)

    async def create_batch(self) -> Any:
        """An empty producer batch of this producer (fill it, then ``send_batch``)."""
        return (await self._started()).create_batch()

    async def send_batch(self, builder: Any, topic: str, partition: int) -> asyncio.Future:
        """Queue a filled batch, closed so that it does not linger; the
        returned future resolves when the broker acked it."""
        builder.close()
        return await (await self._started()).send_batch(builder, topic, partition=partition)

    async def confirm(self, futures: Iterable[asyncio.Future]) -> None:
        """Wait until the broker acknowledged every record behind ``futures``;
        raise if any failed. One flush instead of a gather over thousands of
        futures (which cost more than producing them)."""
        await self.flush()
        for future in futures:
            if not future.done():
                await future
            elif future.exception() is not None:
                raise future.exception()  # type: ignore[misc]

    def send_now(self) -> None:
        """Send what is queued so far without waiting out ``linger_ms`` (the
        records of a whole batch are queued): close the open producer
        batches and wake the sender, as ``flush`` does, without waiting."""
        if self._producer is None:
            return
        accumulator = self._producer._message_accumulator
        for batches in accumulator._batches.values():
            for batch in batches:
                batch._builder.close()
        if not accumulator._waiter_future.done():
            accumulator._waiter_future.set_result(None)

    async def flush(self) -> None:
        """Send everything queued so far now and wait until it is answered.

        aiokafka's ``flush`` waits for batches to finish lingering
        (``linger_ms``) before they are sent; closing the open batches and
        waking the sender, as its transactional commit does, sends them at
        once: a batch's records are all queued by the time we confirm."""
        if self._producer is not None:
            await self._producer._message_accumulator.flush_for_commit()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()  # flushes what is queued
            self._producer = None

    async def reset(self) -> None:
        """Drop the producer for a new one (a new producer id). aiokafka's
        idempotent producer cannot go on after the broker refused one of its
        records: its sequence numbers have a gap, every later batch of that
        partition fails with OutOfOrderSequenceNumber and the sender stops.
        What was queued on the old producer fails; the caller resends it."""
        old, self._producer = self._producer, None
        if old is not None:
            try:
                await asyncio.wait_for(old.stop(), timeout=10)
            except Exception:  # it is broken already; only its resources matter
                log.warning("stopping a failed producer", exc_info=True)


async def confirm_or_exit(producer: OutputProducer, futures: list[asyncio.Future]) -> None:
    """Confirm a batch's records, then forget them. If they failed after the
    producer's retries, Faust would still ack (and commit) the batch's inputs,
    losing them: stop the process instead, so a restart replays them."""
    try:
        await producer.confirm(futures)
    except Exception:
        log.critical("records not acknowledged; exiting so inputs replay", exc_info=True)
        os._exit(70)
    futures.clear()
