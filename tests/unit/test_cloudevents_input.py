"""CloudEvents 1.0 on the interactions topic (issue 16 item 1, input side):
structured mode (the event as JSON) and binary mode (``ce_*`` headers)
mapped to interactions (models/cloudevents.py, agents/event_types.py), and
through ingest's batch handling (agents/ingest.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
import pytest

import agents.ingest as ingest
from agents.event_types import CloudEventProblem, EventTypeFeed, EventTypeProblem, InteractionGate
from app.api.errors import ApiError
from app.api.event_types import EventTypeWriter
from models.cloudevents import binary_attributes, interaction_from_cloudevent
from models.event_types import EventTypeDeclaration, EventTypeRegistry
from tests.unit.test_definition_pending import Topic
from tests.unit.test_ingest_batches import PREFIX, Rig

PAGE_VIEWED = EventTypeDeclaration(
    name="page_viewed", cloudevents_types=["com.example.page.viewed"],
    properties={"url": {"type": "string", "required": True}})  # type: ignore[dict-item]


def structured(**changes: Any) -> dict[str, Any]:
    event = {"specversion": "1.0", "id": "evt-1", "source": "/web/shop",
             "type": "com.example.page.viewed", "subject": "c1",
             "time": "2026-03-01T10:00:00Z", "datacontenttype": "application/json",
             "data": {"url": "/pricing"}}
    event.update(changes)
    return {k: v for k, v in event.items() if v is not None}


def binary(**changes: Any) -> tuple[list[tuple[str, bytes]], bytes]:
    """(headers, value) of the same event in binary mode."""
    event = structured(**changes)
    data = event.pop("data", None)
    content_type = event.pop("datacontenttype", None)
    headers = [(f"ce_{k}", str(v).encode()) for k, v in event.items()]
    if content_type is not None:
        headers.append(("content-type", content_type.encode()))
    return headers, orjson.dumps(data) if data is not None else b""


def gate(accept: bool = False) -> InteractionGate:
    registry = EventTypeRegistry().with_record("page_viewed", PAGE_VIEWED)
    return InteractionGate(EventTypeFeed.fixed(registry), accept)


def message(headers: Any = None) -> Any:
    return SimpleNamespace(topic="t", partition=0, offset=0, key=None, timestamp=1.0,
                           headers=headers)


EXPECTED = {"event_id": "evt-1", "contact_id": "c1", "type": "page_viewed",
            "occurred_at": "2026-03-01T10:00:00Z", "properties": {"url": "/pricing"}}


def test_the_mapping() -> None:
    registry = EventTypeRegistry().with_record("page_viewed", PAGE_VIEWED)
    assert interaction_from_cloudevent(structured(), registry.for_cloudevents_type) == EXPECTED
    # a CloudEvents type that is an event type name maps to itself
    assert interaction_from_cloudevent(structured(type="purchase", data=None, time=None),
                                       registry.for_cloudevents_type) == {
        "event_id": "evt-1", "contact_id": "c1", "type": "purchase", "properties": {}}


def test_structured_mode_is_an_interaction() -> None:
    model, raw = gate().decode(orjson.dumps(structured()), message())
    assert orjson.loads(raw) == EXPECTED
    assert model.type == "page_viewed" and model.contact_id == "c1"
    assert model.occurred_at.isoformat() == "2026-03-01T10:00:00+00:00"
    # by content type too (the structured-mode header of the Kafka binding)
    headers = [("content-type", b"application/cloudevents+json; charset=utf-8")]
    assert orjson.loads(gate().decode(orjson.dumps(structured()), message(headers))[1]) == \
        EXPECTED


def test_binary_mode_is_the_same_interaction() -> None:
    headers, value = binary()
    assert binary_attributes(headers) is not None
    assert binary_attributes([("content-type", b"application/json")]) is None
    model, raw = gate().decode(value, message(headers))
    assert orjson.loads(raw) == EXPECTED
    # headers as a dict (Faust's events), values as str
    model, raw = gate().decode(value, message({k: v.decode() for k, v in headers}))
    assert orjson.loads(raw) == EXPECTED
    headers, value = binary(type="purchase", data=None, datacontenttype=None)
    model, _ = gate().decode(value, message(headers))
    assert model.type == "purchase" and model.properties == {}


@pytest.mark.parametrize(("changes", "reason"), [
    ({"specversion": "0.3"}, "specversion '0.3' is not supported"),
    ({"id": None}, "CloudEvent without id (required)"),
    ({"source": None}, "CloudEvent without source (required)"),
    ({"subject": None}, "CloudEvent without subject: the subject is the contact id"),
    ({"data": [1]}, "data must be a JSON object"),
    ({"datacontenttype": "text/plain", "data": {"url": "/a"}}, "data must be JSON"),
    ({"subject": "not/an id"}, "CloudEvent as an interaction (subject: contact_id, id: event_id, "
                               "time: occurred_at, data: properties): invalid input: contact_id"),
    ({"time": None}, "occurred_at: Field required"),
    ({"time": "yesterday"}, "occurred_at"),
])
def test_a_cloudevent_that_cannot_be_an_interaction_says_why(changes: dict[str, Any],
                                                            reason: str) -> None:
    with pytest.raises(CloudEventProblem) as refused:
        gate().decode(orjson.dumps(structured(**changes)), message())
    assert reason in str(refused.value)


def test_event_types_are_checked_as_for_any_interaction() -> None:
    with pytest.raises(EventTypeProblem,
                       match=r'undeclared CloudEvents type "com\.example\.other"'):
        gate().decode(orjson.dumps(structured(type="com.example.other")), message())
    with pytest.raises(EventTypeProblem, match='undeclared event type "webinar_joined"'):
        gate().decode(orjson.dumps(structured(type="webinar_joined")), message())
    gate(accept=True).decode(orjson.dumps(structured(type="webinar_joined")), message())
    with pytest.raises(EventTypeProblem, match="property 'url' must be a string"):
        gate().decode(orjson.dumps(structured(data={"url": 3})), message())
    headers, value = binary(data={"url": 3})
    with pytest.raises(EventTypeProblem, match="property 'url' must be a string"):
        gate().decode(value, message(headers))
    headers, _ = binary()
    with pytest.raises(CloudEventProblem, match="CloudEvent data is not JSON"):
        gate().decode(b"{", message(headers))


def test_a_cloudevents_type_belongs_to_one_event_type() -> None:
    registry = EventTypeRegistry().with_record("page_viewed", PAGE_VIEWED)
    writer = EventTypeWriter(EventTypeFeed.fixed(registry), Topic())
    with pytest.raises(ApiError) as refused:
        writer.build("other", {"cloudevents_types": ["com.example.page.viewed"]})
    assert refused.value.status == 409 and "already event type \"page_viewed\"" in \
        refused.value.message
    assert writer.build("page_viewed", {"cloudevents_types": ["com.example.page.viewed"]})


async def test_ingest_forwards_cloudevents_as_interactions(
        monkeypatch: pytest.MonkeyPatch) -> None:
    registry = EventTypeRegistry().with_record("page_viewed", PAGE_VIEWED)
    real = ingest.register_ingest
    monkeypatch.setattr(ingest, "register_ingest", lambda *a, **k: real(
        *a, **k, event_types=EventTypeFeed.fixed(registry)))
    rig = Rig(monkeypatch)
    topic = f"{PREFIX}.interactions"
    headers, value = binary(id="evt-2", subject="c2")
    bad_headers, bad_value = binary(id="evt-3", subject=None)

    def event(value: bytes, offset: int, headers: Any = None) -> Any:
        return SimpleNamespace(value=value, message=SimpleNamespace(
            topic=topic, partition=0, offset=offset, key=b"k", timestamp=1.0, headers=headers))

    await rig.run([event(orjson.dumps(structured()), 0), event(value, 1, headers),
                   event(bad_value, 2, bad_headers)], "ingest-interactions")
    assert sorted(rig.forwarded()) == [0, 1]
    assert rig.producer is not None
    forwarded = [orjson.loads(r["value"]) for r in rig.producer.acked
                 if r["topic"] == f"{PREFIX}.evaluator-input"]
    assert [f["body"] for f in forwarded] == [EXPECTED, {**EXPECTED, "event_id": "evt-2",
                                                         "contact_id": "c2"}]
    assert all(f["kind"] == "interaction" for f in forwarded)
    assert rig.dead_letters() == {
        2: "CloudEvent without subject: the subject is the contact id"}
    [letter] = [r for r in rig.producer.acked if r["topic"] == f"{PREFIX}.dead-letters"]
    kept = dict(letter["headers"])  # the event's attributes stay with its dead letter
    assert kept["ce_id"] == b"evt-3" and kept["ce_type"] == b"com.example.page.viewed"


def test_the_asyncapi_document_describes_both_modes() -> None:
    """The CloudEvents SDK's records (a client the service does not use)
    match the documented messages of the interactions channel."""
    from datetime import UTC, datetime

    import jsonschema
    from cloudevents.core.bindings import kafka as ce_kafka
    from cloudevents.core.v1.event import CloudEvent

    from models.asyncapi import asyncapi_document

    doc = asyncapi_document()
    assert set(doc["channels"]["interactions"]["messages"]) == {
        "interaction", "cloudEventStructured", "cloudEventBinary"}
    messages = doc["components"]["messages"]
    structured_schema = {**messages["cloudEventStructured"]["payload"],
                         "components": doc["components"]}
    headers_schema = messages["cloudEventBinary"]["headers"]
    event = CloudEvent(attributes={
        "type": "com.example.page.viewed", "source": "/web", "id": "x1", "subject": "c1",
        "time": datetime(2026, 3, 1, 10, tzinfo=UTC), "datacontenttype": "application/json"},
        data={"url": "/pricing"})
    structured_record = ce_kafka.to_structured_event(event)
    assert structured_record.headers["content-type"].decode() == \
        messages["cloudEventStructured"]["contentType"]
    jsonschema.Draft7Validator(structured_schema).validate(orjson.loads(structured_record.value))
    binary_record = ce_kafka.to_binary_event(event)
    jsonschema.Draft7Validator(headers_schema).validate(
        {k: v.decode() for k, v in binary_record.headers.items()})
    without_subject = {**orjson.loads(structured_record.value)}
    del without_subject["subject"]
    assert not jsonschema.Draft7Validator(structured_schema).is_valid(without_subject)
    # and what the SDK wrote is what ingest maps
    assert orjson.loads(gate().decode(structured_record.value, message(
        list(structured_record.headers.items())))[1])["event_id"] == "x1"
    assert orjson.loads(gate().decode(binary_record.value, message(
        list(binary_record.headers.items())))[1])["event_id"] == "x1"
