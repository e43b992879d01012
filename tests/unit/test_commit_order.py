"""The batch loop's commit order: a batch's changelog records (the state a
successor restores, skipping the inputs it holds) are sent only once its
changes are acknowledged. On a cluster the two topics have different
leaders, so sending both at once could make the state durable ahead of
changes that never arrive. Drives the loop's acker with a producer whose
acknowledgements the test gives."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiokafka import AIOKafkaProducer

from runtime.loop import BatchEvaluator, LoopSettings, LoopTopics, _InFlight
from runtime.processor import Batch, ProcessorConfig
from tests.unit.test_cloudevents_output import JOINED

CHANGELOG = "shop.evaluator-state"


class _HeldProducer:
    """Records each producer batch sent; its acknowledgement waits for the test."""

    def __init__(self) -> None:
        self.real = AIOKafkaProducer(bootstrap_servers="unused:9092")  # never started
        self.sent: list[tuple[str, asyncio.Future[Any]]] = []
        self.changelog_sent = asyncio.Event()

    def create_batch(self) -> Any:
        return self.real.create_batch()

    async def send_batch(self, builder: Any, topic: str, partition: int) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append((topic, future))
        if topic == CHANGELOG:
            self.changelog_sent.set()
        return future

    def acknowledge(self, topic: str) -> None:
        for sent_to, future in self.sent:
            if sent_to == topic and not future.done():
                future.set_result(SimpleNamespace(offset=len(self.sent)))


class _Watched:
    """An acknowledgement whose awaiting the test can wait for: once the
    acker awaits it, whatever the acker sends first has been sent."""

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future
        self.awaited = asyncio.Event()

    def __await__(self) -> Any:
        self.awaited.set()
        return self.future.__await__()


def _loop(tmp_path: Path) -> BatchEvaluator:
    settings = LoopSettings(bootstrap="unused:9092", group_id="g", data_dir=tmp_path,
                            processor=ProcessorConfig(partitions=4), topic_prefix="shop")
    topics = LoopTopics(input="shop.evaluator-input", changes="shop.membership-changes",
                        snapshot="shop.memberships", changelog=CHANGELOG,
                        dead_letters="shop.dead-letters")
    return BatchEvaluator(settings, topics)


async def test_the_changelog_is_sent_only_after_the_changes_are_acknowledged(
        tmp_path: Path) -> None:
    loop = _loop(tmp_path)
    producer = _HeldProducer()
    loop.producer = producer  # type: ignore[assignment]
    tasks = [asyncio.create_task(loop._ack()), asyncio.create_task(loop._settle_logged())]
    try:
        batch = Batch(seq=1, changes=[JOINED], changelog=[(b"k", b"v")])
        outputs = [_Watched(f) for f in await loop._send_outputs(2, batch)]
        await loop._queue.put(_InFlight(2, batch, outputs, [], 10))  # type: ignore[arg-type]
        await asyncio.wait_for(outputs[0].awaited.wait(), timeout=5)  # the acker waits
        assert {topic for topic, _ in producer.sent} == {
            "shop.membership-changes", "shop.memberships"}

        producer.acknowledge("shop.membership-changes")
        producer.acknowledge("shop.memberships")
        await asyncio.wait_for(producer.changelog_sent.wait(), timeout=5)
        producer.acknowledge(CHANGELOG)
        await asyncio.wait_for(loop._settled(), timeout=5)
        assert [topic for topic, _ in producer.sent][-1] == CHANGELOG
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await producer.real.stop()
        loop._store.close()
