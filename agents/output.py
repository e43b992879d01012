"""The evaluator's output producer: a plain aiokafka producer.

Membership changes and snapshot records are most of what a worker writes
(two records per change). Faust's ``Topic.send`` costs far more per record
than aiokafka's ``send`` (sensors, attachments, its own buffer — about a
third of the evaluator's CPU in a py-spy profile), and the evaluator needs
none of that: it sends, collects the delivery futures, and waits for them
once per batch.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from app.settings import Settings

__all__ = ["OutputProducer"]


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
        self, topic: str, key: bytes, value: bytes | None, partition: int | None = None
    ) -> asyncio.Future:
        """Queue one record; the returned future resolves when it is acked."""
        producer = await self._started()
        return await producer.send(topic, value=value, key=key, partition=partition)

    async def flush(self) -> None:
        """Wait until everything queued so far has been sent and answered."""
        if self._producer is not None:
            await self._producer.flush()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()  # flushes what is queued
            self._producer = None
