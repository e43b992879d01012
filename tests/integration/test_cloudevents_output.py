"""Membership changes as CloudEvents on the real broker (issue 16 item 1,
the output side): three workers, one per SEGMENTFLOW_CHANGES_FORMAT, are
fed the same inputs; the CloudEvents Python SDK's Kafka binding (a client
the service does not use) decodes the binary and structured records."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from cloudevents.core.bindings import kafka as ce_kafka

from app.client import Publisher
from app.settings import Settings
from models.inputs import ContactUpsert
from models.segments import SegmentDefinition
from tests.integration.caught_up import end_offsets, wait_caught_up
from tests.integration.conftest import ROOT, free_port
from tests.integration.helpers import wait_segment_applied

pytestmark = pytest.mark.kafka

EXAMPLE = ROOT / "examples/cloudevents_consumer.py"  # docs/integrating.md's CloudEvents consumer


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("cloudevents_consumer", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
# (contact, city, minutes after T0): c1 joins, leaves and joins again; c3 joins
INPUTS = [("c1", "Paris", 0), ("c2", "Lyon", 1), ("c3", "Paris", 2), ("c1", "Berlin", 3),
          ("c1", "Paris", 4)]


async def read_all(settings: Settings, topic: str) -> list[Any]:
    """Every record of ``topic`` up to its end offsets (after caught up)."""
    ends = await end_offsets(settings, [topic])
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    records: list[Any] = []
    try:
        tps = [TopicPartition(topic, tp.partition) for tp in ends]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + 30
        while True:
            positions = [await consumer.position(tp) for tp in tps]
            if all(position >= ends[tp] for position, tp in zip(positions, tps, strict=True)):
                break
            assert time.monotonic() < deadline, f"{topic}: not read to {ends} within 30 s"
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


def decode(record: Any, mode: str) -> Any:
    message = ce_kafka.KafkaMessage(headers={k: v for k, v in record.headers},
                                    key=record.key, value=record.value)
    event = (ce_kafka.from_binary_event(message) if mode == "cloudevents-binary"
             else ce_kafka.from_structured_event(message))
    assert ce_kafka.from_kafka_event(message).get_id() == event.get_id()  # mode detection
    return event


async def test_changes_as_cloudevents_in_binary_and_structured_mode(
        settings, worker_factory, tmp_path) -> None:
    modes = ("native", "cloudevents-binary", "cloudevents-structured")
    run = uuid.uuid4().hex[:8]
    configs = {mode: settings.model_copy(update={
        "topic_prefix": f"t-{run}-ce-{mode}", "changes_format": mode, "clock": "event",
        "data_dir": tmp_path / f"data-{mode}", "web_port": free_port()}) for mode in modes}
    workers = {mode: worker_factory(config) for mode, config in configs.items()}
    for process in workers.values():
        process.start()
    await asyncio.gather(*(process.wait_ready() for process in workers.values()))

    async def feed(mode: str) -> None:
        config = configs[mode]
        async with Publisher(config) as publisher:
            await publisher.send(SegmentDefinition(id="paris", name="Paris",
                                                   formula='city = "Paris"', status="live"))
            await publisher.flush()
            await wait_segment_applied(workers[mode], "paris", version=1,
                                       partitions=config.partitions)
            for contact, city, minutes in INPUTS:
                await publisher.send(ContactUpsert(
                    contact_id=contact, attributes={"city": city},
                    updated_at=T0 + timedelta(minutes=minutes)))
            await publisher.flush()
        await wait_caught_up(config)

    await asyncio.gather(*(feed(mode) for mode in modes))
    records = {mode: await read_all(configs[mode], configs[mode].topics.membership_changes)
               for mode in modes}

    native = {(c["segment_id"], c["contact_id"], c["sequence"]): c
              for c in (orjson.loads(r.value) for r in records["native"])}
    assert sorted(native) == [("paris", "c1", 1), ("paris", "c1", 2), ("paris", "c1", 3),
                              ("paris", "c3", 1)]
    assert all(not r.headers for r in records["native"])  # the default is unchanged

    ids: dict[str, list[str]] = {}
    for mode in ("cloudevents-binary", "cloudevents-structured"):
        prefix = configs[mode].topic_prefix
        events = [(r, decode(r, mode)) for r in records[mode]]
        assert len(events) == len(native)
        for record, event in events:
            data = event.get_data()
            pair = (data["segment_id"], data["contact_id"], data["sequence"])
            assert data == native[pair], mode  # the data is the native change
            assert record.key == data["contact_id"].encode()  # the key as today
            assert event.get_specversion() == "1.0"
            assert event.get_type() == f"io.segmentflow.membership.{data['change']}"
            assert event.get_source() == f"/segmentflow/{prefix}/segments/paris"
            assert event.get_subject() == data["contact_id"]
            assert event.get_time() == datetime.fromisoformat(data["at"])
            assert event.get_datacontenttype() == "application/json"
            assert event.get_id() == "/".join(map(str, pair))
            if mode == "cloudevents-binary":
                assert record.value == orjson.dumps(native[pair])  # native readers still read it
            else:
                assert dict(record.headers)["content-type"] == b"application/cloudevents+json"
        ids[mode] = sorted(event.get_id() for _, event in events)
        assert len(set(ids[mode])) == len(ids[mode])  # one id per change
    # Two workers computed the same changes from the same inputs (what a
    # replay does): the same ids, whatever the mode.
    assert ids["cloudevents-binary"] == ids["cloudevents-structured"]
    # the snapshot topic keeps its own format in every mode
    snapshot = await read_all(configs["cloudevents-structured"],
                              configs["cloudevents-structured"].topics.memberships)
    members = {r.key.decode(): orjson.loads(r.value) for r in snapshot if r.value is not None}
    assert set(members) == {"paris/c1", "paris/c3"}
    assert all(not r.headers for r in snapshot)

    # docs/integrating.md's consumer (confluent-kafka + the SDK) on each
    # CloudEvents topic: every record, then each once more (a replay), is
    # one event; the replays are dropped by id and the members are right.
    example = load_example()
    for mode in ("cloudevents-binary", "cloudevents-structured"):
        journeys = example.Journeys()
        events = [example.to_cloudevent(r.key, r.value, r.headers) for r in records[mode]]
        assert [journeys.apply(e) for e in events + events] == [True] * len(events) + [
            False] * len(events)
        assert journeys.members == {("paris", "c1"), ("paris", "c3")}
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(EXAMPLE), "--bootstrap", settings.bootstrap_servers,
             "--prefix", configs[mode].topic_prefix, "--group", f"journeys-{run}",
             "--max-events", str(len(native))],
            capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[-1] == 'members: ["paris/c1", "paris/c3"]', result.stdout
        assert sum(line.endswith("  applied") for line in lines) == len(native), result.stdout
        assert "joined  paris  c1  id=paris/c1/1  applied" in lines, result.stdout
