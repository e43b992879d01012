"""One Kafka hop at a fixed rate: CPU per record of a forwarder on aiokafka,
on confluent-kafka (librdkafka), and on aiokafka with Kafka transactions;
and the hop's latency.

    .venv/bin/python bench/client_hop.py [--rates 500 2000] [--seconds 8] [--pairs 3]
        [--clients aiokafka confluent-kafka aiokafka-transactions-100ms ...]

Why: under light load the service's cost per input is its Kafka clients'
per-request work, not evaluation (docs/architecture.md, "Light load"); and
Kafka transactions (as under Kafka Streams' exactly-once) are the other commit protocol the
evaluator could use. This isolates one hop as ingest does it: consume a
source topic (4 partitions), forward each record to the same partition of
another topic (acks=all, idempotent, no linger), wait for the acks, commit
offsets at most every 100 ms; or, with transactions, the records and input
offsets of each 100 ms (10 ms) in one transaction. The forwarder runs in a
process of its own, so its CPU is its own (/proc, user + system,
librdkafka's threads included); the publisher (aiokafka, no linger, records
of an interaction's size stamped with their send time) and a
read_committed observer of the output topic run here. The forwarders
alternate, per rate and pair. Writes bench/results/client_hop.json.

confluent-kafka is a dev dependency (the integration example); the
service runs on aiokafka, which the stack prescribes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

PARTITIONS = 4
COMMIT_EVERY = 0.1
PAD = "x" * 300  # an interaction record's size, about


async def _send_batches(producer: Any, fetched: dict[Any, list[Any]], target: str) -> list[Any]:
    """Each partition's records as closed producer batches (as ingest sends
    them); returns their acknowledgements."""
    acks = []
    for tp, records in fetched.items():
        batch = producer.create_batch()
        for record in records:
            if batch.append(key=record.key, value=record.value, timestamp=None,
                            headers=[]) is None:  # full: send it, start another
                batch.close()
                acks.append(await producer.send_batch(batch, target, partition=tp.partition))
                batch = producer.create_batch()
                batch.append(key=record.key, value=record.value, timestamp=None, headers=[])
        batch.close()
        acks.append(await producer.send_batch(batch, target, partition=tp.partition))
    return acks


def forward_aiokafka(bootstrap: str, source: str, target: str, group: str) -> None:
    """The forwarder on aiokafka, as ingest does it: ``getmany``, one closed
    producer batch per partition (no per-record ``send``), await the acks."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def run() -> None:
        consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=group,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                    enable_idempotence=True, linger_ms=0)
        await consumer.start()
        await producer.start()
        print("READY", flush=True)
        committed = time.monotonic()
        while True:
            fetched = await consumer.getmany(timeout_ms=500, max_records=500)
            for ack in await _send_batches(producer, fetched, target):
                await ack
            if fetched and time.monotonic() - committed >= COMMIT_EVERY:
                committed = time.monotonic()
                await consumer.commit()

    asyncio.run(run())


def forward_aiokafka_transactions(interval: float) -> Callable[[str, str, str, str], None]:
    """The forwarder with Kafka transactions (as Kafka Streams' exactly-once
    uses them): the records of ``interval`` seconds and their input
    offsets (``send_offsets_to_transaction``) in one transaction; a
    read_committed consumer sees them at its commit."""

    def forward(bootstrap: str, source: str, target: str, group: str) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        async def run() -> None:
            consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=group,
                                        enable_auto_commit=False,
                                        auto_offset_reset="earliest",
                                        isolation_level="read_committed")
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0,
                                        transactional_id=f"{group}-tx")
            await consumer.start()
            await producer.start()
            print("READY", flush=True)
            opened: float | None = None  # when the open transaction began
            positions: dict[Any, int] = {}
            while True:
                wait = 0.5 if opened is None else max(0.0, opened + interval - time.monotonic())
                fetched = await consumer.getmany(timeout_ms=int(wait * 1000), max_records=500)
                if fetched and opened is None:
                    await producer.begin_transaction()
                    opened = time.monotonic()
                await _send_batches(producer, fetched, target)  # acked by the commit
                positions.update({tp: records[-1].offset + 1
                                  for tp, records in fetched.items()})
                if opened is not None and time.monotonic() - opened >= interval:
                    await producer.send_offsets_to_transaction(positions, group)
                    await producer.commit_transaction()
                    opened, positions = None, {}

        asyncio.run(run())

    return forward


def forward_confluent(bootstrap: str, source: str, target: str, group: str) -> None:
    """The same forwarder on confluent-kafka: wait for a record, take what
    else is there, produce each, wait for the deliveries."""
    from confluent_kafka import Consumer, KafkaException, Producer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 0})
    consumer.subscribe([source])
    print("READY", flush=True)
    pending = 0

    def delivered(err: object, _msg: object) -> None:
        nonlocal pending
        pending -= 1
        if err is not None:
            raise KafkaException(err)

    committed = time.monotonic()
    while True:
        first = consumer.poll(0.5)
        records = [] if first is None else [first, *consumer.consume(499, timeout=0)]
        for record in records:
            if record.error() is None:
                pending += 1
                producer.produce(target, value=record.value(), key=record.key(),
                                 partition=record.partition(), on_delivery=delivered)
        while pending:
            producer.poll(0.05)
        if records and time.monotonic() - committed >= COMMIT_EVERY:
            committed = time.monotonic()
            consumer.commit(asynchronous=True)


FORWARDERS: dict[str, Callable[[str, str, str, str], None]] = {
    "aiokafka": forward_aiokafka,
    "confluent-kafka": forward_confluent,
    # a transaction per commit interval, Kafka Streams' default under exactly-once
    "aiokafka-transactions-100ms": forward_aiokafka_transactions(0.1),
    "aiokafka-transactions-10ms": forward_aiokafka_transactions(0.01),
}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def hop(bootstrap: str, client: str, rate: float, seconds: float) -> dict:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    tag = uuid.uuid4().hex[:6]
    source, target = f"hop-in-{tag}", f"hop-out-{tag}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(source, PARTITIONS, 1),
                                   NewTopic(target, PARTITIONS, 1)])
    finally:
        await admin.close()
    child = subprocess.Popen([sys.executable, __file__, "--forward", client, bootstrap,
                              source, target, f"hop-{tag}"], stdout=subprocess.PIPE)
    latencies: list[float] = []
    observer = AIOKafkaConsumer(target, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest",
                                isolation_level="read_committed")  # as a journey engine would
    publisher = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"READY"
        await observer.start()
        await publisher.start()
        warm = 4 * PARTITIONS  # the forwarder's group joins on its first records
        for i in range(warm):
            await publisher.send_and_wait(source, b'{"warm": 1}', key=str(i).encode())
        seen = 0
        while seen < warm:  # the hop is up: every warm-up record came through
            seen += sum(len(r) for r in (await observer.getmany(timeout_ms=500)).values())

        expected: list[int] = []  # the records sent, once all are
        everything = asyncio.Event()  # the observer saw them all

        async def observe() -> None:
            while True:
                fetched = await observer.getmany(timeout_ms=200)
                now = time.time()
                for records in fetched.values():
                    for record in records:
                        stamp = json.loads(record.value).get("t")
                        if stamp is not None:  # not a warm-up record
                            latencies.append(now - stamp)
                if expected and len(latencies) >= expected[0]:
                    everything.set()

        watching = asyncio.create_task(observe())
        cpu0, started, sent = _cpu_seconds(child.pid), time.monotonic(), 0
        while time.monotonic() - started < seconds:
            delay = started + sent / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await publisher.send(source, json.dumps({"t": time.time(), "pad": PAD}).encode(),
                                 key=str(sent % 4000).encode())
            sent += 1
        await publisher.flush()
        expected.append(sent)
        all_seen = asyncio.ensure_future(everything.wait())
        await asyncio.wait({all_seen, watching}, timeout=30,
                           return_when=asyncio.FIRST_COMPLETED)
        all_seen.cancel()
        if child.poll() is not None:
            raise RuntimeError(f"the {client} forwarder exited with {child.returncode}")
        if len(latencies) < sent:
            raise RuntimeError(f"the {client} forwarder passed {len(latencies)} of {sent}")
        cpu = _cpu_seconds(child.pid) - cpu0
        elapsed = time.monotonic() - started
        if watching.done():
            watching.result()  # the observer failed: say why
        watching.cancel()
    finally:
        child.kill()
        child.wait()
        await observer.stop()
        await publisher.stop()
    latencies.sort()
    return {
        "client": client, "rate": rate, "sent": sent, "forwarded": len(latencies),
        "cpu_us_per_record": round(1e6 * cpu / sent),
        "cores": round(cpu / elapsed, 2),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
        "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1),
    }


async def main(rates: list[float], seconds: float, pairs: int, clients: list[str]) -> None:
    from harness import RESULTS, start_broker

    bootstrap = start_broker()
    rows = []
    for rate in rates:
        for _ in range(pairs):
            for client in clients:
                row = await hop(bootstrap, client, rate, seconds)
                rows.append(row)
                print(f"{client:>15} {rate:>6.0f}/s  {row['cpu_us_per_record']:>5} µs CPU per "
                      f"record ({row['cores']} core)  p50 {row['p50_ms']} / p99 "
                      f"{row['p99_ms']} ms  {row['forwarded']}/{row['sent']}", flush=True)
    summary = {}
    for rate in rates:
        for client in clients:
            runs = [r for r in rows if r["rate"] == rate and r["client"] == client]
            summary[f"{client} {rate:.0f}/s"] = {
                "cpu_us_per_record": [r["cpu_us_per_record"] for r in runs],
                "median_us": statistics.median(r["cpu_us_per_record"] for r in runs)}
    for name, figures in summary.items():
        print(f"{name}: {figures['cpu_us_per_record']} µs per record, "
              f"median {figures['median_us']}")
    out = RESULTS / "client_hop.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": seconds,
                               "runs": rows, "summary": summary}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--forward":
        FORWARDERS[sys.argv[2]](*sys.argv[3:7])
    else:
        parser = argparse.ArgumentParser()
        parser.add_argument("--rates", type=float, nargs="+", default=[500.0, 2000.0])
        parser.add_argument("--seconds", type=float, default=8.0)
        parser.add_argument("--pairs", type=int, default=3)
        parser.add_argument("--clients", nargs="+", default=list(FORWARDERS),
                            choices=list(FORWARDERS))
        args = parser.parse_args()
        asyncio.run(main(args.rates, args.seconds, args.pairs, args.clients))
