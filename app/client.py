"""Small aiokafka clients for the CLI, the demo and tests: publish inputs and
segment definitions the way upstream systems would, and read the outputs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import BaseModel

from agents.codec import input_payload
from app.settings import Settings
from models.inputs import (
    AccountDelete,
    AccountUpsert,
    ContactDelete,
    ContactUpsert,
    Interaction,
    StaticEdit,
)
from models.segments import SegmentDefinition, SegmentDelete

__all__ = ["Publisher", "tail"]


class Publisher:
    """Routes each model to its upstream topic, keyed as upstream would."""

    def __init__(self, settings: Settings, *, linger_ms: int = 5) -> None:
        """``linger_ms``: how long a record may wait for others to share its
        request (throughput); 0 sends each as soon as the connection is free."""
        self._settings = settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers, linger_ms=linger_ms, acks="all"
        )

    async def __aenter__(self) -> Publisher:
        try:
            await self._producer.start()
        except BaseException:  # e.g. no broker: close what start opened
            await self._producer.stop()
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._producer.stop()

    def _target(self, model: BaseModel) -> tuple[str, str]:
        t = self._settings.topics
        if isinstance(model, ContactUpsert | ContactDelete):
            return t.contacts, model.contact_id
        if isinstance(model, Interaction):
            return t.interactions, model.contact_id
        if isinstance(model, StaticEdit):
            return t.static_edits, model.contact_id
        if isinstance(model, AccountUpsert | AccountDelete):
            return t.accounts, model.account_id
        if isinstance(model, SegmentDefinition):
            return t.segment_definitions, model.id
        if isinstance(model, SegmentDelete):
            return t.segment_definitions, model.segment_id
        raise TypeError(f"no topic for {type(model).__name__}")

    async def send(self, model: BaseModel) -> None:
        topic, key = self._target(model)
        value = orjson.dumps(input_payload(model))
        await self._producer.send(topic, value, key=key.encode())

    async def send_raw(self, topic: str, value: bytes | None, key: bytes | None = None) -> None:
        await self._producer.send(topic, value, key=key)

    async def send_all(self, models: Iterable[BaseModel]) -> int:
        count = 0
        for model in models:
            await self.send(model)
            count += 1
        await self._producer.flush()
        return count

    async def flush(self) -> None:
        await self._producer.flush()


async def tail(
    settings: Settings, topic: str, *, from_beginning: bool = True
) -> AsyncIterator[tuple[bytes | None, bytes | None]]:
    """Yield (key, value) from every partition of ``topic`` as they arrive."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        group_id=None,
    )
    try:
        await consumer.start()
    except BaseException:  # e.g. no broker: close what start opened
        await consumer.stop()
        raise
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    yield record.key, record.value
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
