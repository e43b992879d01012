"""The ceiling: a bare aiokafka consume -> produce pipe over the same broker
and the same interaction records the service just processed.

It reads the service scenario's ``<prefix>.interactions`` topic from the
beginning (same records, same sizes, same partitions) and produces, per input
record, one record of the size of a real membership change to its own output
topic, keyed by the input key. Batching is tuned in its favour (large fetches,
linger, big batches, one flush at the end, acks=all + idempotence like the
service's output producer). Time = consumer assigned -> last output acked.

No parsing, no state, no evaluation: an upper bound for any Kafka service in
Python on this machine.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

CHANGE_SAMPLE = orjson.dumps({
    "segment_id": "spring-openers-12", "contact_id": "c004711", "change": "joined",
    "at": datetime.now(UTC).isoformat(), "cause": {"kind": "interaction", "ref": "e123456"},
    "segment_version": 1, "sequence": 3,
})


async def _create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def pipe(bootstrap: str, source_topic: str, partitions: int,
               out_size: int = len(CHANGE_SAMPLE), timeout: float = 600,
               fanout: int = 1) -> dict:
    """Run the bare pipe over everything currently in ``source_topic``:
    ``fanout`` output records per input (1: the plain ceiling)."""
    out_topic = f"{source_topic}.ceiling-{uuid.uuid4().hex[:4]}"
    await _create_topic(bootstrap, out_topic, partitions)
    payload = (CHANGE_SAMPLE + b" " * max(0, out_size - len(CHANGE_SAMPLE)))[:max(
        out_size, len(CHANGE_SAMPLE))]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=f"ceiling-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False, auto_offset_reset="earliest",
        fetch_max_bytes=52_428_800, max_partition_fetch_bytes=4_194_304,
        max_poll_records=10_000)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
        linger_ms=20, max_batch_size=1_048_576)
    tps = [TopicPartition(source_topic, p) for p in range(partitions)]
    await consumer.start()
    await producer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        total = sum(end.values()) - sum((await consumer.beginning_offsets(tps)).values())
        start = time.monotonic()
        done, pending = 0, []
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining and time.monotonic() - start < timeout:
            batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
            for tp, records in batches.items():
                for r in records:
                    for _ in range(fanout):
                        pending.append(await producer.send(out_topic, payload, key=r.key,
                                                           partition=tp.partition))
                    done += 1
                if records and records[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
            if len(pending) > 50_000 * fanout:
                await asyncio.gather(*pending)
                pending = []
            await consumer.commit()
        await asyncio.gather(*pending)
        elapsed = time.monotonic() - start
    finally:
        await consumer.stop()
        await producer.stop()
    return {"events": done, "expected": total, "seconds": round(elapsed, 3),
            "events_per_s": round(done / elapsed, 1), "output_bytes": len(payload),
            "fanout": fanout, "output_topic": out_topic}


async def fill(bootstrap: str, source_topic: str, partitions: int, count: int) -> str:
    """Copy ``source_topic``'s records (cycled, same keys and partitions) into
    a new topic until it holds ``count`` records; returns its name. Gives the
    pipe enough volume to time (it is ~100x faster than the service)."""
    target = f"{source_topic}.ceiling-in-{uuid.uuid4().hex[:4]}"
    await _create_topic(bootstrap, target, partitions)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_poll_records=10_000)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_batch_size=1_048_576)
    tps = [TopicPartition(source_topic, p) for p in range(partitions)]
    await consumer.start()
    await producer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        records: list = []
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, rs in batches.items():
                records.extend(rs)
                if rs and rs[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
        sent = 0
        while records and sent < count:
            for r in records:
                await producer.send(target, r.value, key=r.key, partition=r.partition)
                sent += 1
                if sent >= count:
                    break
        await producer.flush()
    finally:
        await consumer.stop()
        await producer.stop()
    return target


async def ceiling(bootstrap: str, source_topic: str, partitions: int,
                  count: int = 200_000, fanout: int = 1) -> dict:
    """Fill a topic with ``count`` copies of the service's input records, pipe
    it with one output per input, and (``fanout`` > 1) again with ``fanout``
    outputs per input — the service's own output volume (a change plus its
    snapshot record per membership change)."""
    filled = await fill(bootstrap, source_topic, partitions, count)
    result = await pipe(bootstrap, filled, partitions)
    result["input_topic"] = filled
    if fanout > 1:
        result["same_output_volume"] = await pipe(bootstrap, filled, partitions,
                                                  fanout=fanout)
    return result
