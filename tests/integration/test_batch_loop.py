"""The runtime's batch loop (runtime/loop.py) on a real broker: inputs in,
changes, snapshot records, changelog and dead letters out, through a kill
(in-flight batches dropped), a restart on the same disk, and a restart
with the local stores lost (restored from the changelog). The changes a
consumer folds (sequence filter) must equal the broker-free driver's on
the same inputs, and the malformed inputs must be dead-lettered."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from models.changes import MembershipChange
from runtime.driver import Driver, fold_changes
from runtime.loop import BatchEvaluator, LoopSettings, LoopTopics
from runtime.partitioning import partition_for
from runtime.processor import ProcessorConfig

pytestmark = pytest.mark.kafka

PARTITIONS = 3
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SEGMENTS = [
    {"id": "paris", "name": "P", "status": "live", "formula": 'city = "Paris"'},
    {"id": "buyers", "name": "B", "status": "live",
     "formula": "performed purchase at least 2 times within last 3 days"},
    {"id": "both", "name": "PB", "status": "live",
     "formula": 'in segment "paris" and in segment "buyers"'},
]


def _inputs(phase: int, contacts: int = 60) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    base = T0 + timedelta(days=2 * phase)
    for i in range(contacts):
        cid = f"c{i}"
        at = base + timedelta(minutes=i)
        out.append(("contact", {"contact_id": cid, "updated_at": at.isoformat(),
                                "attributes": {"city": "Paris" if (i + phase) % 3 else "Lyon"}}))
        for n in range((i + phase) % 4):
            out.append(("interaction", {
                "event_id": f"e{phase}-{i}-{n}", "contact_id": cid, "type": "purchase",
                "occurred_at": (at + timedelta(hours=n)).isoformat(), "properties": {}}))
    return out


async def _create_topics(bootstrap: str, topics: LoopTopics) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([
            NewTopic(topics.input, PARTITIONS, 1), NewTopic(topics.changes, PARTITIONS, 1),
            NewTopic(topics.snapshot, PARTITIONS, 1, topic_configs={"cleanup.policy": "compact"}),
            NewTopic(topics.changelog, PARTITIONS, 1, topic_configs={"cleanup.policy": "compact"}),
            NewTopic(topics.dead_letters, 1, 1)])
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, inputs: list[tuple[str, dict[str, Any]]],
                   driver: Driver, raw: list[tuple[int, bytes]] = ()) -> dict[int, int]:
    """Send to the input log as the ingest agent would (commands to every
    partition, contact inputs to the contact's); mirror into the driver.
    Returns the end offsets after sending."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for kind, body in inputs:
            value = orjson.dumps({"kind": kind, "body": body})
            if kind == "segment":
                for p in range(PARTITIONS):
                    await producer.send(topic, value, key=body["id"].encode(), partition=p)
            else:
                cid = body["contact_id"]
                await producer.send(topic, value, key=cid.encode(),
                                    partition=partition_for(cid, PARTITIONS))
            driver.send(kind, body)
        for partition, value in raw:
            await producer.send(topic, value, key=b"bad", partition=partition)
        await producer.flush()
    finally:
        await producer.stop()
    return await _ends(bootstrap, topic)


async def _ends(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: end for tp, end in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def _read_all(bootstrap: str, topic: str, partitions: int) -> list[Any]:
    ends = await _ends(bootstrap, topic, partitions)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    records: list[Any] = []
    try:
        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp.partition] for tp in tps])

        while await behind():
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


def _topics(prefix: str) -> LoopTopics:
    return LoopTopics(input=f"{prefix}-in", changes=f"{prefix}-changes",
                      snapshot=f"{prefix}-snapshot", changelog=f"{prefix}-changelog",
                      dead_letters=f"{prefix}-dead")


def _loop(bootstrap: str, topics: LoopTopics, group: str, data: Path,
          standby_replicas: int = 0) -> BatchEvaluator:
    config = ProcessorConfig(partitions=PARTITIONS, clock="event", backfill_chunk=16)
    settings = LoopSettings(bootstrap=bootstrap, group_id=group, data_dir=data,
                            processor=config, batch_max=40, commit_interval=0.05,
                            cache_bytes=1 << 20, write_buffer_bytes=1 << 20,
                            standby_replicas=standby_replicas)

    def fatal(exc: BaseException) -> None:
        raise AssertionError("a record was not acknowledged") from exc

    return BatchEvaluator(settings, topics, on_fatal=fatal)


async def test_batch_loop_kill_restart_and_lost_disk(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix = f"bl-{uuid.uuid4().hex[:8]}"
    topics = _topics(prefix)
    await _create_topics(kafka_bootstrap, topics)
    driver = Driver(PARTITIONS, config=ProcessorConfig(partitions=PARTITIONS, clock="event"))
    group = f"{prefix}-evaluator"
    try:
        await _produce(kafka_bootstrap, topics.input, [("segment", s) for s in SEGMENTS], driver)
        bad = b'{"kind": "interaction", "body": {"contact_id": "x"}}'
        ends = await _produce(kafka_bootstrap, topics.input, _inputs(0), driver,
                              raw=[(0, b"not json"), (1, bad)])

        first = _loop(kafka_bootstrap, topics, group, tmp_path / "disk-a")
        await first.start()
        await first.wait_committed(ends, timeout=60)
        # the worker's decoded-state cache is shared evenly by its partitions
        share = first.settings.state_cache_bytes // PARTITIONS
        assert [p.state_cache_bytes for p in first.processors.values()] == [share] * PARTITIONS
        # kill -9 mid-stream: whatever is in flight is dropped unsettled
        ends = await _produce(kafka_bootstrap, topics.input, _inputs(1), driver)
        async with first.progress:
            await first.progress.wait_for(lambda: first.stats.inputs > 40)
        await first.stop(settle=False)

        second = _loop(kafka_bootstrap, topics, group, tmp_path / "disk-a")  # same disk
        await second.start()
        ends = await _produce(kafka_bootstrap, topics.input, _inputs(2), driver)
        await second.wait_committed(ends, timeout=60)
        await second.stop()

        third = _loop(kafka_bootstrap, topics, group, tmp_path / "disk-b")  # disk lost
        await third.start()
        ends = await _produce(kafka_bootstrap, topics.input, _inputs(3), driver)
        await third.wait_committed(ends, timeout=60)
        await third.stop()

        driver.run_until_idle()
        want = driver.members()
        records = await _read_all(kafka_bootstrap, topics.changes, PARTITIONS)
        got = fold_changes([MembershipChange.model_validate_json(r.value) for r in records])
        assert got == want
        assert sum(len(v) for v in want.values()) > 50  # the scenario has members
        dead = await _read_all(kafka_bootstrap, topics.dead_letters, 1)
        reasons = sorted(orjson.loads(r.value)["reason"].split(":")[0] for r in dead)
        assert reasons == ["evaluation failed", "undecodable envelope"]
    finally:
        driver.close()
