"""Ingest batches account for every input (issue #11, "Safety"): each input
is forwarded or dead-lettered, whatever fails on one record; the dead
letters are confirmed before the batch is acked; only a broker that cannot
be reached stops the process. Driven with a fake producer and stream (the
real broker: tests/integration/test_ingest_accounting.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

import agents.ingest as ingest
from app.metrics import Metrics
from app.settings import Settings

PREFIX = "t"
NAMES = ("contacts", "accounts", "interactions", "segment-definitions", "static-edits",
         "evaluator-input", "membership-changes", "memberships", "dead-letters")


class FakeTopic:
    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[tuple[Any, Any]] = []  # Faust-style sends (the old dead-letter path)

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, key: Any = None, value: Any = None, force: bool = False) -> Any:
        self.sent.append((key, value))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class FakeBatch:
    """aiokafka's BatchBuilder as ingest uses it (never full here)."""

    def __init__(self, capacity: int | None = None) -> None:
        self.records: list[tuple[bytes | None, bytes | None, Any]] = []
        self.capacity = capacity  # records it takes (None: no bound)

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: int | None,
               headers: Any) -> object | None:
        if self.records and self.capacity is not None and len(self.records) >= self.capacity:
            return None  # full (an empty batch takes any record)
        self.records.append((key, value, headers))
        return object()


class FakeProducer:
    """Records what is sent; ``raise_on(value)`` makes ``send`` raise, and
    ``fail_on(value, attempt)`` fails the delivery future of that attempt."""

    def __init__(self, settings: Settings) -> None:
        self.raise_on: Callable[[bytes | None], BaseException | None] = lambda v: None
        self.fail_on: Callable[[bytes | None, int], BaseException | None] = lambda v, n: None
        self.attempts: dict[bytes | None, int] = {}
        self.queued: list[tuple[asyncio.Future, BaseException | None, dict[str, Any]]] = []
        self.acked: list[dict[str, Any]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   partition: int | None = None, timestamp_ms: int | None = None,
                   headers: list[tuple[str, bytes]] | None = None, **_: Any) -> asyncio.Future:
        exc = self.raise_on(value)
        if exc is not None:
            raise exc
        n = self.attempts[value] = self.attempts.get(value, 0) + 1
        future = asyncio.get_running_loop().create_future()
        record = {"topic": topic, "key": key, "value": value, "partition": partition,
                  "headers": headers}
        self.queued.append((future, self.fail_on(value, n), record))
        return future

    async def create_batch(self) -> FakeBatch:
        self.batches = getattr(self, "batches", 0) + 1
        return FakeBatch(getattr(self, "batch_capacity", None))

    async def send_batch(self, builder: FakeBatch, topic: str, partition: int) -> asyncio.Future:
        """As the broker treats a producer batch: one refused record refuses
        it whole (``raise_on`` before it is queued, ``fail_on`` at delivery)."""
        for _, value, _ in builder.records:
            exc = self.raise_on(value)
            if exc is not None:
                raise exc
        future = asyncio.get_running_loop().create_future()
        failure = None
        for _, value, _ in builder.records:
            n = self.attempts[value] = self.attempts.get(value, 0) + 1
            failure = failure or self.fail_on(value, n)
        records = [{"topic": topic, "key": key, "value": value, "partition": partition,
                    "headers": headers} for key, value, headers in builder.records]
        self.queued.append((future, failure, {"batch": records}))
        return future

    def send_now(self) -> None:  # the broker answers at once
        self._answer()

    async def flush(self) -> None:
        self._answer()

    def _answer(self) -> None:
        for future, exc, record in self.queued:
            if not future.done():
                if exc is None:
                    future.set_result(None)
                    self.acked.extend(record.get("batch", [record]))
                else:
                    future.set_exception(exc)
        self.queued.clear()

    async def confirm(self, futures: Any) -> None:
        await self.flush()
        for future in futures:
            await future

    async def stop(self) -> None:
        pass

    async def reset(self) -> None:
        self.resets = getattr(self, "resets", 0) + 1


class Exited(Exception):
    pass


def _exit(code: int) -> None:
    raise Exited(code)


class FakeApp:
    def __init__(self) -> None:
        self.agents: dict[str, Callable[..., Any]] = {}
        self.on_before_shutdown = SimpleNamespace(connect=lambda fn: fn)

    def agent(self, source: Any, name: str) -> Callable[[Any], Any]:
        def register(fn: Any) -> Any:
            self.agents[name] = fn
            return fn
        return register


class FakeStream:
    def __init__(self, events: list[Any]) -> None:
        self.events = events
        self.acked: list[Any] = []

    async def take_events(self, n: int, within: float) -> Any:
        try:
            yield list(self.events)
        finally:  # what Faust's take_events does, whatever happened
            self.acked.extend(self.events)


def event(value: bytes | None, offset: int, topic: str = "t.contacts") -> Any:
    message = SimpleNamespace(topic=topic, partition=0, offset=offset, key=b"k%d" % offset,
                              timestamp=1.0)
    return SimpleNamespace(value=value, message=message)


def contact(cid: str, pad: int = 0) -> bytes:
    return orjson.dumps({"contact_id": cid, "attributes": {"pad": "x" * pad}})


class Rig:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> None:
        # The per-batch handling (agents/ingest._handler) is the same for the
        # batch loop and the Faust agents; registered as agents, the rig can
        # drive it batch by batch (the loop is covered on the real broker).
        self.settings = Settings(bootstrap_servers="unused:1", topic_prefix=PREFIX, partitions=2,
                                 ingest="faust", **settings)
        self.topics = SimpleNamespace(**{
            n.replace("-", "_"): FakeTopic(f"{PREFIX}.{n}") for n in NAMES})
        self.producer: FakeProducer | None = None

        def make(settings: Settings) -> FakeProducer:  # one fake for every agent
            if self.producer is None:
                self.producer = FakeProducer(settings)
            return self.producer

        monkeypatch.setattr(ingest, "OutputProducer", make)
        monkeypatch.setattr(os, "_exit", _exit)
        self.app = FakeApp()
        self.metrics = Metrics()
        ingest.register_ingest(self.app, self.topics, self.settings, self.metrics)  # type: ignore[arg-type]

    async def run(self, events: list[Any], agent: str = "ingest-contacts") -> FakeStream:
        stream = FakeStream(events)
        await self.app.agents[agent](stream)
        return stream

    def forwarded(self) -> list[int]:
        """Source offsets of the records acked on the evaluator's log."""
        assert self.producer is not None
        return [int(dict(r["headers"])[ingest.SOURCE_HEADER].split(b":")[-1])
                for r in self.producer.acked if r["topic"] == f"{PREFIX}.evaluator-input"]

    def dead_letters(self) -> dict[int, str]:
        """Source offset -> reason of the dead letters the broker acked."""
        assert self.producer is not None
        letters = [orjson.loads(r["value"]) for r in self.producer.acked
                   if r["topic"] == f"{PREFIX}.dead-letters"]
        return {d["offset"]: d["reason"] for d in letters}


async def test_a_record_the_producer_refuses_is_dead_lettered_and_the_batch_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The limit is raised above what the producer takes: its own check refuses
    # the record synchronously (the 1,048,540-byte contact of the review).
    rig = Rig(monkeypatch, max_input_bytes=2_000_000)
    big = orjson.dumps({"contact_id": "big", "attributes": {
        f"a{n}": "x" * 60_000 for n in range(18)}})
    assert rig.producer is not None
    rig.producer.raise_on = lambda v: (MessageSizeTooLargeError("too large")
                                       if v is not None and len(v) > 1_048_576 else None)
    stream = await rig.run([event(contact("c1"), 0), event(big, 1), event(contact("c2"), 2)])
    assert sorted(rig.forwarded()) == [0, 2]
    assert rig.dead_letters() == {1: "not forwarded: MessageSizeTooLargeError: [Error 10] "
                                     "MessageSizeTooLargeError: too large"}
    assert len(stream.acked) == 3


async def test_full_producer_batches_are_sent_and_keep_each_partitions_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = Rig(monkeypatch)
    assert rig.producer is not None
    rig.producer.batch_capacity = 2
    contacts = [f"c{n}" for n in range(9)]
    await rig.run([event(contact(cid), n) for n, cid in enumerate(contacts)])
    forwarded = rig.forwarded()
    assert sorted(forwarded) == list(range(9))
    by_partition: dict[int, list[int]] = {}
    for offset in forwarded:
        by_partition.setdefault(ingest.partition_for(contacts[offset], 2), []).append(offset)
    assert all(offsets == sorted(offsets) for offsets in by_partition.values())
    assert rig.producer.batches >= 5  # 9 records, at most 2 per producer batch


async def test_a_record_error_in_delivery_dead_letters_that_record_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = Rig(monkeypatch)
    bad = ingest.envelope_around("contact", contact("bad"))
    assert rig.producer is not None
    # The broker refuses a whole producer batch: every record of the first
    # attempt fails; resent alone, only the bad one fails again.
    rig.producer.fail_on = lambda v, n: (
        MessageSizeTooLargeError("batch refused")
        if v is not None and v.startswith(b'{"kind"') and (n == 1 or v == bad) else None)
    await rig.run([event(contact("c1"), 0), event(contact("bad"), 1), event(contact("c2"), 2)])
    assert sorted(rig.forwarded()) == [0, 2]
    assert list(rig.dead_letters()) == [1]
    assert "MessageSizeTooLargeError" in rig.dead_letters()[1]
    # a new producer (id) after each refusal: aiokafka's idempotent one stops
    assert rig.producer.resets == 2


async def test_an_unexpected_error_dead_letters_that_record_and_not_the_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = Rig(monkeypatch)
    real = ingest.partition_for

    def flaky(key: str, partitions: int) -> int:
        if key == "boom":
            raise ZeroDivisionError("a bug")
        return real(key, partitions)

    monkeypatch.setattr(ingest, "partition_for", flaky)
    stream = await rig.run([event(contact("c1"), 0), event(contact("boom"), 1),
                            event(contact("c2"), 2)])
    assert sorted(rig.forwarded()) == [0, 2]
    assert rig.dead_letters() == {1: "ingest failed: ZeroDivisionError: a bug"}
    assert len(stream.acked) == 3


async def test_dead_letters_are_acked_by_the_broker_before_the_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = Rig(monkeypatch)
    stream = await rig.run([event(b"{oops", 0), event(None, 1), event(contact("c1"), 2)])
    letters = rig.dead_letters()
    assert "Invalid JSON" in letters[0] and letters[1] == "empty message (null value)"
    assert rig.forwarded() == [2] and len(stream.acked) == 3
    assert rig.topics.dead_letters.sent == []  # not through Faust's unconfirmed send


async def test_the_size_limit_applies_to_the_forwarded_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = Rig(monkeypatch, max_input_bytes=200)
    envelope = len(ingest.envelope_around("contact", b""))
    fits = contact("c1", pad=200 - envelope - len(contact("c1")))
    assert len(ingest.envelope_around("contact", fits)) == 200
    over = contact("c2", pad=201 - envelope - len(contact("c2")))  # fits, not its envelope
    too_big = contact("c3", pad=200)
    await rig.run([event(fits, 0), event(over, 1), event(too_big, 2)])
    assert rig.forwarded() == [0]
    letters = rig.dead_letters()
    assert letters[1] == (f"forwarded record of 201 bytes (input of {201 - envelope} bytes in "
                          "its envelope) exceeds 200")
    assert letters[2].startswith("input of ") and letters[2].endswith("bytes exceeds 200")
    assert rig.metrics.dead_letters.labels("too_large")._value.get() == 2


async def test_broadcast_records_carry_their_source_and_a_broker_outage_exits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = Rig(monkeypatch)
    account = b'{"account_id": "a1", "attributes": {"tier": "gold"}}'
    await rig.run([event(account, 7, "t.accounts")], agent="ingest-accounts")
    assert rig.forwarded() == [7, 7]  # one per partition, both from offset 7
    assert rig.producer is not None
    rig.producer.fail_on = lambda v, n: KafkaTimeoutError()
    with pytest.raises(Exited):
        await rig.run([event(contact("c1"), 8)])
    assert rig.dead_letters() == {}  # the batch replays instead


async def test_pipelined_batches_keep_the_log_order_when_an_earlier_batch_resends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The batch loop queues batch B while batch A's records are unanswered.
    # The broker then refuses A's producer batch; as aiokafka's idempotent
    # producer does, it fails what was queued behind on the same producer (B)
    # too. A's good records are resent, then B's: never B's before A's, and
    # nothing new is queued until both settled.
    rig = Rig(monkeypatch)
    assert rig.producer is not None
    producer = rig.producer
    producer.send_now = lambda: None  # type: ignore[method-assign]  # answered when told
    bad = ingest.envelope_around("contact", contact("bad"))
    producer.fail_on = lambda v, n: (
        MessageSizeTooLargeError("batch refused")
        if v is not None and v.startswith(b'{"kind"') and (n == 1 or v == bad) else None)
    handler = ingest._handler(
        rig.topics, rig.settings, rig.topics.contacts,  # type: ignore[arg-type]
        *next((d, r) for s, d, r in ingest._routes(rig.settings, rig.topics)  # type: ignore[arg-type]
              if s is rig.topics.contacts),
        rig.metrics, producer)  # type: ignore[arg-type]
    settle_a = await handler.submit([event(contact("c1"), 0), event(contact("bad"), 1),
                                     event(contact("c2"), 2)])
    settle_b = await handler.submit([event(contact("c1", pad=1), 3)])
    assert settle_a is not None and settle_b is not None
    await producer.flush()  # the broker answers: the first attempt of everything fails
    await settle_a()
    assert await handler.submit([event(contact("c3"), 4)]) is None  # B has not settled
    await settle_b()
    handler.unblock()  # what the loop does once nothing is in flight
    settle_c = await handler.submit([event(contact("c3"), 4)])
    assert settle_c is not None
    await producer.flush()
    await settle_c()
    assert rig.forwarded() == [0, 2, 3, 4]
    assert list(rig.dead_letters()) == [1]
