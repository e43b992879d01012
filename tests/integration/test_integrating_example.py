"""docs/integrating.md's example (examples/confluent_publish_consume.py, a
confluent-kafka client) against a worker on the real broker; and Kafka's
murmur2 partitioner as librdkafka applies it (``murmur2_random``) against
the partition the service computes for a contact id."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import uuid
from types import ModuleType

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from runtime.partitioning import partition_for
from tests.integration.api_helpers import TOKEN
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.kafka

EXAMPLE = ROOT / "examples/confluent_publish_consume.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("confluent_publish_consume", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def settings(settings):
    settings.api_token = TOKEN  # the example defines its segment with the write token
    settings.partitions = 3  # more than one bit of the hash decides the partition
    return settings


def keyed_partitions(bootstrap: str, topic: str, key: str, partitions: int) -> set[int]:
    """The partitions holding records keyed ``key``, read to the end with
    confluent-kafka (the records' own partition, as the broker has it)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)}
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        found: set[int] = set()
        load_example().read_to(consumer, ends, lambda m: (
            found.add(m.partition()) if m.key() == key.encode() else None), timeout=30)
        return found
    finally:
        consumer.close()


async def test_example_against_a_worker(settings, worker, reader):
    changes = await reader(settings.topics.membership_changes)
    contact, segment = f"ex-{uuid.uuid4().hex[:8]}", "example-french-buyers"
    result = await asyncio.to_thread(  # blocking; the reader keeps reading meanwhile
        subprocess.run,
        [sys.executable, str(EXAMPLE), "--bootstrap", settings.bootstrap_servers,
         "--prefix", settings.topic_prefix, "--api", worker.url, "--token", TOKEN,
         "--contact", contact, "--segment", segment, "--timeout", "60"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("summary: "), result.stdout[-2000:]
    summary = json.loads(last.removeprefix("summary: "))

    # What the example saw through its sequence filter: the joined change,
    # the leave, the erasure (a gap: 2 -> 4) and the re-created contact at 1.
    seen = [(c["change"], c["sequence"], c["cause"]) for c in summary["changes"]]
    assert [s[:2] for s in seen] == [("joined", 1), ("left", 2), ("left", 4), ("joined", 1)]
    assert seen[0][2] in ("interaction", "contact_update")  # topics are not ordered together
    assert (seen[1][2], seen[2][2]) == ("contact_update", "erasure")
    assert all(c["applied"] for c in summary["changes"])
    assert summary["replay_dropped"] and summary["member_at_end"]
    assert summary["late_bootstrap"] == {"member": True, "sequence": 1}
    assert "occurred_at" in summary["dead_letter_reason"]
    assert "timezone" in summary["dead_letter_reason"]

    # ... and exactly what the worker published for that pair.
    published = [(c["change"], c["sequence"], c["cause"]["kind"])
                 for c in await changes.settle()
                 if c["contact_id"] == contact and c["segment_id"] == segment]
    assert published == seen

    # murmur2 parity end to end: confluent-kafka put every input on the
    # partition the service computes for the contact, ingest forwarded it to
    # that partition of the evaluator's log, and the changes came out there.
    expected = partition_for(contact, settings.partitions)
    assert summary["expected_partition"] == expected
    assert {r["partition"] for r in summary["published"]} == {expected}
    assert {c["partition"] for c in summary["changes"]} == {expected}
    forwarded = await asyncio.to_thread(
        keyed_partitions, settings.bootstrap_servers, settings.topics.evaluator_input,
        contact, settings.partitions)
    assert forwarded == {expected}


async def test_librdkafka_murmur2_random_is_the_services_partitioner(settings):
    """Keys of many lengths (the hash's tail cases), produced by confluent-kafka
    to a topic of 8 partitions: with ``murmur2_random`` each lands where the
    service's ``partition_for`` (aiokafka's murmur2) and the example's own
    murmur2 say; librdkafka's default partitioner (CRC32) does not."""
    example = load_example()
    topic, partitions = f"{settings.topic_prefix}.parity", 8
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        await asyncio.to_thread(future.result, 30)
    keys = [f"c{n}" * (1 + n % 7) + "x" * (n % 4) for n in range(200)]
    keys += ["a", "ab", "abc", "abcd", "user@example.com", "c12583", "42"]

    def delivered(config: dict) -> dict[str, int]:
        producer = Producer({"bootstrap.servers": settings.bootstrap_servers, **config})
        got: dict[str, int] = {}

        def report(err, msg) -> None:
            assert err is None, err
            got[msg.key().decode()] = msg.partition()

        for key in keys:
            producer.produce(topic, key=key.encode(), value=b"{}", on_delivery=report)
        assert producer.flush(30) == 0
        return got

    try:
        murmur = await asyncio.to_thread(delivered, {"partitioner": "murmur2_random"})
        default = await asyncio.to_thread(delivered, {})
    finally:
        for future in admin.delete_topics([topic]).values():
            await asyncio.to_thread(future.result, 30)
    service = {key: partition_for(key, partitions) for key in keys}
    assert murmur == service
    assert {key: example.partition_for(key, partitions) for key in keys} == service
    assert len(set(service.values())) == partitions  # every partition exercised
    assert default != service  # why docs/integrating.md insists on the setting
