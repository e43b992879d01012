"""The batch loop's commit order: a batch's changelog records (the state a
successor restores, skipping the inputs it holds) are sent only once its
changes are acknowledged. On a cluster the two topics have different
leaders, so sending both at once could make the state durable ahead of
changes that never arrive. Drives the loop's acker with a producer whose
acknowledgements the test gives."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiokafka import AIOKafkaProducer

from runtime.keys import Keyspace, stored_key
from runtime.loop import BatchEvaluator, LoopSettings, LoopTopics, _InFlight
from runtime.processor import INPUT_OFFSET_KEY, Batch, ProcessorConfig
from tests.unit.test_cloudevents_output import JOINED

CHANGELOG = "shop.evaluator-state"


class _Recording:
    """A producer batch builder that remembers what was appended."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.records: list[tuple[bytes | None, bytes | None]] = []

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: Any,
               headers: Any) -> Any:
        self.records.append((key, value))
        return self.real.append(key=key, value=value, timestamp=timestamp, headers=headers)

    def close(self) -> None:
        self.real.close()


class _HeldProducer:
    """Records each producer batch sent; its acknowledgement waits for the test."""

    def __init__(self) -> None:
        self.real = AIOKafkaProducer(bootstrap_servers="unused:9092")  # never started
        self.sent: list[tuple[str, asyncio.Future[Any]]] = []
        self.changelog: list[tuple[int, list[tuple[bytes | None, bytes | None]]]] = []
        self.changelog_sent = asyncio.Event()

    def create_batch(self) -> Any:
        return _Recording(self.real.create_batch())

    async def send_batch(self, builder: Any, topic: str, partition: int) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append((topic, future))
        if topic == CHANGELOG:
            self.changelog.append((partition, builder.records))
            self.changelog_sent.set()
        return future

    def acknowledge(self, topic: str) -> None:
        for index, (sent_to, future) in enumerate(self.sent):
            if sent_to == topic and not future.done():
                future.set_result(SimpleNamespace(offset=index))  # its base offset


class _Watched:
    """An acknowledgement whose awaiting the test can wait for: once the
    acker awaits it, whatever the acker sends first has been sent."""

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future
        self.awaited = asyncio.Event()

    def __await__(self) -> Any:
        self.awaited.set()
        return self.future.__await__()


def _loop(tmp_path: Path, **options: Any) -> BatchEvaluator:
    settings = LoopSettings(bootstrap="unused:9092", group_id="g", data_dir=tmp_path,
                            processor=ProcessorConfig(partitions=4), topic_prefix="shop",
                            **options)
    topics = LoopTopics(input="shop.evaluator-input", changes="shop.membership-changes",
                        snapshot="shop.memberships", changelog=CHANGELOG,
                        dead_letters="shop.dead-letters")
    return BatchEvaluator(settings, topics)


@contextlib.asynccontextmanager
async def _acker(loop: BatchEvaluator) -> AsyncIterator[_HeldProducer]:
    """The loop's acker (both stages) running over a held producer."""
    producer = _HeldProducer()
    loop.producer = producer  # type: ignore[assignment]
    tasks = [asyncio.create_task(loop._ack()), asyncio.create_task(loop._settle_logged())]
    try:
        yield producer
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await producer.real.stop()
        loop._store.close()


async def test_the_changelog_is_sent_only_after_the_changes_are_acknowledged(
        tmp_path: Path) -> None:
    loop = _loop(tmp_path)
    async with _acker(loop) as producer:
        batch = Batch(seq=1, changes=[JOINED], changelog=[(b"k", b"v")])
        outputs = [_Watched(f) for f in await loop._send_outputs(2, batch)]
        await loop._queue.put(_InFlight(2, batch, outputs, 10))  # type: ignore[arg-type]
        await asyncio.wait_for(outputs[0].awaited.wait(), timeout=5)  # the acker waits
        assert {topic for topic, _ in producer.sent} == {
            "shop.membership-changes", "shop.memberships"}

        producer.acknowledge("shop.membership-changes")
        producer.acknowledge("shop.memberships")
        await asyncio.wait_for(producer.changelog_sent.wait(), timeout=5)
        producer.acknowledge(CHANGELOG)
        await asyncio.wait_for(loop._settled(), timeout=5)
        assert [topic for topic, _ in producer.sent][-1] == CHANGELOG


class _GatheringSignal(asyncio.Event):
    """The acker's wake-up event, saying when the acker starts waiting on it
    (it has taken a batch and gathers more)."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = asyncio.Event()

    async def wait(self) -> Any:
        self.waiting.set()
        return await super().wait()


def _done() -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


async def test_batches_queued_meanwhile_share_one_changelog_send(tmp_path: Path) -> None:
    """Group commit: after a send, the next one waits (here: a long commit
    interval) until half of ``max_in_flight`` is queued, then carries every
    queued batch, one record per key and partition, the input offset
    record last; the group's input offsets become committable."""
    loop = _loop(tmp_path, commit_interval=600.0, max_in_flight=4)
    marker = stored_key(Keyspace.META, INPUT_OFFSET_KEY)
    commits: list[tuple[int, int, int | None]] = []  # (partition, batch, checkpoint)
    for partition in (1, 3):
        loop.processors[partition] = SimpleNamespace(  # type: ignore[assignment]
            store=SimpleNamespace(commit=lambda seq, checkpoint, p=partition: commits.append(
                (p, seq, checkpoint))))
    async with _acker(loop) as producer:
        first = Batch(seq=0, changelog=[(b"k", b"0"), (marker, b"10")])
        await loop._queue.put(_InFlight(1, first, [_done()], 11))
        await asyncio.wait_for(producer.changelog_sent.wait(), timeout=5)  # the first: at once
        producer.changelog_sent.clear()
        assert producer.changelog == [(1, [(b"k", b"0"), (marker, b"10")])]

        second = Batch(seq=1, changelog=[(b"k", b"1"), (b"j", b"1"), (marker, b"11")])
        third = Batch(seq=2, changelog=[(b"k", b"2"), (marker, b"12")])
        other = Batch(seq=0, changelog=[(b"x", b"1")])  # another partition, no input
        gathering = _GatheringSignal()
        loop._log_wake = gathering
        await loop._hand_over(_InFlight(1, second, [_done()], 12))
        await asyncio.wait_for(gathering.waiting.wait(), timeout=5)  # the acker took it
        assert loop._queue.empty()
        await loop._hand_over(_InFlight(3, other, [_done()], None))
        await loop._hand_over(_InFlight(1, third, [_done()], 13))  # half full: wakes it
        await asyncio.wait_for(producer.changelog_sent.wait(), timeout=5)
        assert producer.changelog[1:] == [
            (1, [(b"k", b"2"), (b"j", b"1"), (marker, b"12")]),
            (3, [(b"x", b"1")]),
        ]
        producer.acknowledge(CHANGELOG)
        await asyncio.wait_for(loop._settled(), timeout=5)
        # one store commit per partition: through the group's last batch, with
        # the changelog offset of its last record (base offset = the send's
        # index, see _HeldProducer.acknowledge)
        assert commits == [(1, 0, 0 + 2 - 1), (1, 2, 1 + 3 - 1), (3, 0, 2 + 1 - 1)]
        assert {tp.partition: offset for tp, offset in loop._committable.items()} == {1: 13}


async def test_a_rebalance_or_stop_does_not_wait_for_the_gathering(tmp_path: Path) -> None:
    loop = _loop(tmp_path, commit_interval=600.0, max_in_flight=16)
    async with _acker(loop) as producer:
        await loop._queue.put(_InFlight(0, Batch(seq=0, changelog=[(b"k", b"0")]), [], 1))
        await asyncio.wait_for(producer.changelog_sent.wait(), timeout=5)
        producer.changelog_sent.clear()
        producer.acknowledge(CHANGELOG)
        await loop._queue.put(_InFlight(0, Batch(seq=1, changelog=[(b"k", b"1")]), [], 2))
        settled = asyncio.create_task(loop._settled())
        await asyncio.wait_for(producer.changelog_sent.wait(), timeout=5)  # not 300 s later
        producer.acknowledge(CHANGELOG)
        await asyncio.wait_for(settled, timeout=5)
        assert [records for _, records in producer.changelog] == [[(b"k", b"0")], [(b"k", b"1")]]
