"""Membership changes as CloudEvents 1.0 (issue 16 item 1, the output side):
the encoding of each SEGMENTFLOW_CHANGES_FORMAT (models/change_events.py),
read back with the CloudEvents Python SDK's Kafka binding (a client the
service does not use), through the batch loop's send path and the Faust
evaluator's, and against the AsyncAPI document."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from cloudevents.core.bindings import kafka as ce_kafka
from pydantic import ValidationError

from app.settings import Settings
from models.asyncapi import asyncapi_document
from models.change_events import (
    CHANGES_FORMATS,
    change_event_id,
    encode_change,
    native_change,
)
from models.changes import Cause, MembershipChange
from runtime.loop import BatchEvaluator, LoopSettings, LoopTopics, _InFlight
from runtime.outputs import change_record, change_record_as
from runtime.processor import Batch, ProcessorConfig

AT = datetime(2026, 12, 1, 9, 30, 0, 250_000, tzinfo=UTC)
JOINED = MembershipChange(segment_id="french-buyers", contact_id="c1@example.com",
                          change="joined", at=AT,
                          cause=Cause(kind="interaction", ref="o-981-1"),
                          segment_version=3, sequence=5)
LEFT = JOINED.model_copy(update={"change": "left", "sequence": 6,
                                 "cause": Cause(kind="time")})


def sdk_event(key: bytes, value: bytes, headers: list[tuple[str, bytes]], mode: str) -> Any:
    message = ce_kafka.KafkaMessage(headers=dict(headers), key=key, value=value)
    if mode == "cloudevents-binary":
        event = ce_kafka.from_binary_event(message)
    else:
        event = ce_kafka.from_structured_event(message)
    auto = ce_kafka.from_kafka_event(message)  # the SDK tells the modes apart by itself
    assert auto.get_attributes() == event.get_attributes() and auto.get_data() == event.get_data()
    return event


@pytest.mark.parametrize("mode", ["cloudevents-binary", "cloudevents-structured"])
@pytest.mark.parametrize("change", [JOINED, LEFT], ids=["joined", "left"])
def test_a_change_as_a_cloudevent_read_by_the_sdk(mode: str, change: MembershipChange) -> None:
    key, value, headers = encode_change(change, mode, "shop")
    assert key == b"c1@example.com"  # the record key as in the native format
    event = sdk_event(key, value, headers, mode)
    assert event.get_specversion() == "1.0"
    assert event.get_type() == f"io.segmentflow.membership.{change.change}"
    assert event.get_source() == "/segmentflow/shop/segments/french-buyers"
    assert event.get_subject() == "c1@example.com"
    assert event.get_id() == f"french-buyers/c1@example.com/{change.sequence}"
    assert event.get_time() == AT
    assert event.get_datacontenttype() == "application/json"
    assert event.get_extension("partitionkey") == "c1@example.com"
    _, native_value = change_record(change)
    assert event.get_data() == orjson.loads(native_value)  # data: the native change
    assert MembershipChange.model_validate(event.get_data()) == change
    assert native_change(value) == orjson.loads(native_value)


def test_binary_mode_keeps_the_native_value_and_structured_mode_has_its_content_type() -> None:
    native_key, native_value = change_record(JOINED)
    key, value, headers = encode_change(JOINED, "cloudevents-binary", "shop")
    assert (key, value) == (native_key, native_value)  # native consumers still read it
    names = [name for name, _ in headers]
    assert names[:6] == ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_subject",
                         "ce_time"]
    assert dict(headers)["content-type"] == b"application/json"
    key, value, headers = encode_change(JOINED, "cloudevents-structured", "shop")
    assert key == native_key
    assert headers == [("content-type", b"application/cloudevents+json")]
    assert orjson.loads(value)["data"] == orjson.loads(native_value)
    assert encode_change(JOINED, "native", "shop") == (native_key, native_value, [])
    assert change_record_as(JOINED, "native", "shop") == (native_key, native_value, [])
    with pytest.raises(ValueError, match="not one of native, cloudevents-binary"):
        encode_change(JOINED, "cloudevents-batch", "shop")


@pytest.mark.parametrize("mode", ["cloudevents-binary", "cloudevents-structured"])
def test_the_id_is_the_same_when_a_change_is_replayed_and_differs_otherwise(mode: str) -> None:
    """A replay re-emits a change with its sequence (docs/architecture.md),
    possibly at another wall-clock time and from another worker: same id.
    Another change of the pair, or of another pair, has another id."""
    def event_id(change: MembershipChange) -> str:
        key, value, headers = encode_change(change, mode, "shop")
        return sdk_event(key, value, headers, mode).get_id()

    replayed = JOINED.model_copy(update={"at": AT + timedelta(seconds=7)})
    assert event_id(replayed) == event_id(JOINED) == change_event_id(
        "french-buyers", "c1@example.com", 5)
    others = [LEFT,
              JOINED.model_copy(update={"segment_id": "french"}),
              JOINED.model_copy(update={"contact_id": "c2"}),
              JOINED.model_copy(update={"sequence": 7})]
    ids = {event_id(change) for change in [JOINED, *others]}
    assert len(ids) == 5
    # ids cannot contain "/" (models/ids.py): the parts read back unambiguously
    assert event_id(JOINED).split("/") == ["french-buyers", "c1@example.com", "5"]


@pytest.mark.parametrize("at", [
    datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
    datetime(2026, 12, 1, 9, 30, 0, 1234, tzinfo=UTC),
    datetime(2026, 12, 1, 9, 30, tzinfo=timezone(timedelta(hours=2))),
], ids=["utc", "micros", "offset"])
def test_time_is_the_changes_at_as_written_in_the_data(at: datetime) -> None:
    change = JOINED.model_copy(update={"at": at})
    _, value, headers = encode_change(change, "cloudevents-binary", "p")
    assert dict(headers)["ce_time"].decode() == orjson.loads(value)["at"]
    _, value, _ = encode_change(change, "cloudevents-structured", "p")
    event = orjson.loads(value)
    assert event["time"] == event["data"]["at"]
    assert datetime.fromisoformat(event["time"]) == at


def test_the_records_match_the_asyncapi_document() -> None:
    doc = asyncapi_document()
    assert set(doc["channels"]["membership_changes"]["messages"]) == {
        "membershipChange", "membershipChangeCloudEventBinary",
        "membershipChangeCloudEventStructured"}
    messages = doc["components"]["messages"]

    def validator(schema: dict[str, Any]) -> jsonschema.Draft7Validator:
        return jsonschema.Draft7Validator({**schema, "components": doc["components"]})

    for change in (JOINED, LEFT):
        _, value, headers = encode_change(change, "cloudevents-binary", "segmentflow")
        binary = messages["membershipChangeCloudEventBinary"]
        validator(binary["headers"]).validate({k: v.decode() for k, v in headers})
        validator(binary["payload"]).validate(orjson.loads(value))
        _, value, headers = encode_change(change, "cloudevents-structured", "segmentflow")
        structured = messages["membershipChangeCloudEventStructured"]
        assert dict(headers)["content-type"].decode() == structured["contentType"]
        validator(structured["payload"]).validate(orjson.loads(value))
        broken = {**orjson.loads(value), "type": "io.segmentflow.membership.moved"}
        assert not validator(structured["payload"]).is_valid(broken)


def test_the_setting() -> None:
    assert Settings().changes_format == "native"
    for fmt in CHANGES_FORMATS:
        assert Settings(changes_format=fmt).changes_format == fmt
    with pytest.raises(ValidationError):
        Settings(changes_format="cloudevents")


class _Builder:
    """aiokafka's own batch builder (compiled: it takes headers as a list,
    nothing else), recording what was appended."""

    def __init__(self, real: Any) -> None:
        self.real, self.records = real, []

    def append(self, **record: Any) -> object:
        metadata = self.real.append(**record)
        self.records.append(record)
        return metadata

    def close(self) -> None:
        self.real.close()


class _Producer:
    """What the batch loop asks of aiokafka's producer, recorded."""

    def __init__(self) -> None:
        self.real = AIOKafkaProducer(bootstrap_servers="unused:9092")  # never started
        self.sent: list[tuple[str, int, list[dict[str, Any]]]] = []

    def create_batch(self) -> _Builder:
        return _Builder(self.real.create_batch())

    async def send_batch(self, builder: _Builder, topic: str, partition: int) -> Any:
        self.sent.append((topic, partition, builder.records))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def unstarted_loop(mode: str, tmp_path: Path) -> BatchEvaluator:
    """A batch loop of prefix "shop" publishing changes in ``mode``, never
    started: tests give it a recording producer."""
    settings = LoopSettings(bootstrap="unused:9092", group_id="g", data_dir=tmp_path,
                            processor=ProcessorConfig(partitions=4), changes_format=mode,
                            topic_prefix="shop")
    topics = LoopTopics(input="shop.evaluator-input", changes="shop.membership-changes",
                        snapshot="shop.memberships", changelog="shop.evaluator-state",
                        dead_letters="shop.dead-letters")
    return BatchEvaluator(settings, topics)


@pytest.mark.parametrize("mode", CHANGES_FORMATS)
async def test_the_batch_loop_sends_changes_in_the_configured_format(
        mode: str, tmp_path: Path) -> None:
    loop = unstarted_loop(mode, tmp_path)
    try:
        producer = _Producer()
        loop.producer = producer  # type: ignore[assignment]
        await loop._send_outputs(2, Batch(seq=1, changes=[JOINED, LEFT]))
        await loop._send_changelog([_InFlight(2, Batch(seq=1, changelog=[(b"k", b"v")]), [],
                                              None)])
        changes = [(p, records) for topic, p, records in producer.sent
                   if topic == "shop.membership-changes"]
        assert [p for p, _ in changes] == [2]
        sent = changes[0][1]
        assert [encode_change(c, mode, "shop") for c in (JOINED, LEFT)] == [
            (r["key"], r["value"], r["headers"]) for r in sent]
        snapshots = [r for topic, _, records in producer.sent if topic == "shop.memberships"
                     for r in records]
        assert all(r["headers"] == [] for r in snapshots)  # the snapshot keeps its format
        if mode != "native":
            events = [sdk_event(r["key"], r["value"], r["headers"], mode) for r in sent]
            assert [e.get_type() for e in events] == ["io.segmentflow.membership.joined",
                                                      "io.segmentflow.membership.left"]
        else:
            assert all(r["headers"] == [] for r in sent)  # no headers at all, as before
        assert [topic for topic, _, _ in producer.sent][-1] == "shop.evaluator-state"
    finally:
        await producer.real.stop()
        loop._store.close()


@pytest.mark.parametrize("mode", CHANGES_FORMATS)
def test_the_cli_and_the_demo_read_changes_in_every_format(mode: str) -> None:
    """`segmentflow watch` and the demo's change log read the value of any
    format (a structured CloudEvent: its data)."""
    from app.cli_kafka import _segment_of, format_change

    _, value, _ = encode_change(JOINED, mode, "shop")
    _, native = change_record(JOINED)
    assert format_change(value) == format_change(native)
    assert "french-buyers" in format_change(value) and "+ joined" in format_change(value)
    assert _segment_of(value) == "french-buyers"
    assert native_change(value) == orjson.loads(native)
