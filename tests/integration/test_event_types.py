"""Event types are data (issue 13 item 4), on the real broker: a type
declared with the CLI (through the API, onto the event-types topic) is
accepted by ingest and evaluated; an undeclared type and a property that
violates its declared type are dead-lettered with their reasons; a segment
naming an undeclared type is refused at its line and column."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import aiohttp
import orjson
import pytest
from click.testing import CliRunner

from app.cli import cli
from app.client import Publisher
from models.inputs import Interaction
from tests.integration.api_helpers import AUTH, TOKEN, Api
from tests.integration.caught_up import wait_caught_up
from tests.integration.conftest import free_port
from tests.integration.helpers import wait_segment_applied

pytestmark = pytest.mark.kafka

DECLARATIONS = """\
name: page_viewed
description: a page of the web site
time_field: properties.viewed_at
properties:
  url: {type: string, required: true}
  seconds: {type: number}
  viewed_at: {type: datetime}
---
name: webinar_joined
"""


@pytest.fixture
def settings(settings):
    settings.api_token = TOKEN
    return settings


def _interaction(event_id: str, contact_id: str, kind: str, **properties: object) -> Interaction:
    return Interaction(event_id=event_id, contact_id=contact_id, type=kind,
                       occurred_at="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
                       properties=properties)  # type: ignore[arg-type]


async def test_declared_types_are_applied_and_undeclared_ones_dead_lettered(
        settings, worker, reader, tmp_path):
    runner = CliRunner()
    env = {"SEGMENTFLOW_API_URL": worker.url, "SEGMENTFLOW_API_TOKEN": TOKEN}

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, list(args), env=env)
        assert result.exit_code == code, (args, result.output, result.exception)
        return result.output

    path = tmp_path / "event-types.yaml"
    path.write_text(DECLARATIONS)
    assert run("event-types", "apply", "-f", str(path)).splitlines() == [
        "event-type/page_viewed declared (v1)", "event-type/webinar_joined declared (v1)"]
    assert run("event-types", "apply", "-f", str(path)).splitlines() == [
        "event-type/page_viewed unchanged (v1)", "event-type/webinar_joined unchanged (v1)"]
    listing = {row.split()[0]: row.split()[1:4]
               for row in run("event-types", "list").splitlines()[1:]}
    assert listing["page_viewed"] == ["1", "declared", "accepted"]
    assert listing["purchase"] == ["1", "default", "accepted"]
    shown = run("event-types", "show", "page_viewed")
    assert "time field:  properties.viewed_at" in shown and "url: string required" in shown
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nproperties: {a: {type: text}}\n---\nname: fine_one\n")
    out = run("event-types", "apply", "-f", str(bad), code=1)
    assert out.splitlines()[0].startswith("event-type/x refused: properties.a.type: ")
    assert out.splitlines()[1].startswith("event-type/fine_one not applied: ")

    # segmentflow produce checks interactions against the declarations (read from the topic)
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('{"event_id": "p1", "contact_id": "c9", "type": "page_viewed", '
                      '"occurred_at": "2026-01-01T00:00:00Z", "properties": {"seconds": 3}}\n')
    produced = await asyncio.to_thread(
        runner.invoke, cli, ["produce", "-f", str(inputs)],
        env={"KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
             "SEGMENTFLOW_TOPIC_PREFIX": settings.topic_prefix})
    assert produced.exit_code == 1, produced.output
    assert ("invalid: document 1 (interaction): event type \"page_viewed\" (version 1): "
            "property 'url' is required") in produced.output

    # segmentflow apply checks event types before writing anything
    segments = tmp_path / "segments.yaml"
    segments.write_text("id: ok\nformula: performed page_viewed ever\n---\n"
                        "id: typo2\nformula: performed page_veiwed ever\n")
    out = run("apply", "-f", str(segments), code=1)
    assert ('segment/typo2 refused (document 2): formula line 1, column 11: undeclared event '
            'type "page_veiwed" (declared: ') in out, out
    assert "segment/ok not applied" in out, out

    async with aiohttp.ClientSession() as session:
        api = Api(session, worker.url, auth=AUTH)
        await api.load_openapi()
        # A segment naming an undeclared type: refused where the type is named.
        status, body = await api.call(
            "PUT", "/segments/typo", route="/segments/{segment_id}", json={
                "status": "live", "formula": "country = \"FR\" or\n  performed page_veiwed ever"})
        assert status == 422 and body["error"]["code"] == "undeclared_event_type", body
        assert body["error"]["details"][0]["message"].startswith(
            'line 2, column 13: undeclared event type "page_veiwed" (declared: ')
        status, body = await api.call("POST", "/preview", route="/preview",
                                      data="performed page_veiwed ever",
                                      headers={**AUTH, "Content-Type": "text/plain"})
        assert status == 422 and body["error"]["code"] == "undeclared_event_type", body
        await api.call("GET", "/event-types", route="/event-types", expect=200)
        _, shown = await api.call("GET", "/event-types/page_viewed",
                                  route="/event-types/{name}", expect=200)
        assert shown["version"] == 1 and shown["source"] == "declared"
        await api.call("GET", "/event-types/telepathy", route="/event-types/{name}",
                       expect=404)
        await api.call("PUT", "/event-types/webinar_joined", route="/event-types/{name}",
                       json={"description": "joined a webinar"}, expect=202)
        _, shown = await api.call("GET", "/event-types/webinar_joined", expect=200)
        assert shown["version"] == 2
        await api.call("PUT", "/event-types/webinar_joined", route="/event-types/{name}",
                       json={"description": "x"}, headers={}, expect=401)  # no token
        await api.call("PUT", "/event-types/webinar_joined", route="/event-types/{name}",
                       json={"version": 7}, expect=409)
        await api.call("PUT", "/segments/pricing", expect=202,
                       json={"status": "live",
                             "formula": 'performed page_viewed where url = "/pricing" ever'})
    await wait_segment_applied(worker, "pricing", 1, settings.partitions)

    dead = await reader(settings.topics.dead_letters)
    async with Publisher(settings) as publisher:
        await publisher.send(_interaction("e1", "c1", "page_viewed", url="/pricing"))
        await publisher.send(_interaction("e2", "c2", "telepathy", url="/pricing"))
        await publisher.send(_interaction("e3", "c3", "page_viewed", url=5))
        await publisher.send(_interaction("e4", "c4", "purchase", amount=3))  # built-in
        # no occurred_at: the declared time field gives the event time
        await publisher.send_raw(settings.topics.interactions, orjson.dumps({
            "event_id": "e5", "contact_id": "c5", "type": "page_viewed",
            "properties": {"url": "/pricing", "viewed_at": "2026-02-01T10:00:00Z"}}), b"c5")
        await publisher.flush()
    await wait_caught_up(settings)
    letters = {json.loads(letter["preview"])["event_id"]: letter["reason"]
               for letter in await dead.settle()}
    assert set(letters) == {"e2", "e3"}, letters
    assert letters["e2"].startswith('undeclared event type "telepathy" (declared: ')
    assert "page_viewed" in letters["e2"] and "PUT /event-types/telepathy" in letters["e2"]
    assert f"{settings.topic_prefix}.event-types" in letters["e2"]
    assert letters["e3"] == ('event type "page_viewed" (version 1): property \'url\' must be '
                             'a string, not 5')
    members = json.loads(run("members", "pricing", "--json"))["members"]
    assert sorted(members) == ["c1", "c5"]


async def test_cloudevents_in_structured_and_binary_mode_are_interactions(
        settings, worker, reader):
    """CloudEvents written by the CloudEvents SDK (its Kafka binding; a
    client the service does not use) on the interactions topic: both modes
    are applied as interactions; a CloudEvent without subject and one of an
    undeclared CloudEvents type are dead-lettered with their reasons."""
    from aiokafka import AIOKafkaProducer
    from cloudevents.core.bindings import kafka as ce_kafka
    from cloudevents.core.v1.event import CloudEvent

    async with aiohttp.ClientSession() as session:
        api = Api(session, worker.url, auth=AUTH)
        await api.call("PUT", "/event-types/page_viewed", expect=202, json={
            "cloudevents_types": ["com.example.page.viewed"],
            "properties": {"url": {"type": "string", "required": True}}})
        await api.call("PUT", "/segments/pricing", expect=202, json={
            "status": "live", "formula": 'performed page_viewed where url = "/pricing" ever'})
    await wait_segment_applied(worker, "pricing", 1, settings.partitions)

    def event(event_id: str, subject: str | None, kind: str = "com.example.page.viewed"
              ) -> CloudEvent:
        attributes: dict[str, object] = {
            "type": kind, "source": "/web/shop", "id": event_id,
            "time": datetime(2026, 3, 1, 10, tzinfo=UTC), "datacontenttype": "application/json"}
        if subject is not None:
            attributes["subject"] = attributes["partitionkey"] = subject
        return CloudEvent(attributes=attributes, data={"url": "/pricing"})

    messages = [ce_kafka.to_structured_event(event("ce-1", "c1")),
                ce_kafka.to_binary_event(event("ce-2", "c2")),
                ce_kafka.to_binary_event(event("ce-3", None)),
                ce_kafka.to_structured_event(event("ce-4", "c4", "com.example.cart.viewed"))]
    dead = await reader(settings.topics.dead_letters)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        for m in messages:
            key = m.key.encode() if isinstance(m.key, str) else m.key
            await producer.send_and_wait(settings.topics.interactions, m.value, key=key,
                                         headers=list(m.headers.items()))
    finally:
        await producer.stop()
    await wait_caught_up(settings)
    letters = await dead.settle()
    reasons = sorted(letter["reason"] for letter in letters)
    assert reasons[0] == "CloudEvent without subject: the subject is the contact id", reasons
    assert reasons[1].startswith('undeclared CloudEvents type "com.example.cart.viewed": no '
                                 "event type lists it in cloudevents_types"), reasons
    assert len(reasons) == 2
    runner = CliRunner()
    result = runner.invoke(cli, ["members", "pricing", "--json"],
                           env={"SEGMENTFLOW_API_URL": worker.url, "SEGMENTFLOW_API_TOKEN": TOKEN})
    assert sorted(json.loads(result.output)["members"]) == ["c1", "c2"], result.output


async def test_a_declaration_written_to_the_topic_reaches_every_worker(
        settings, worker, worker_factory, tmp_path):
    """An operator's record on <prefix>.event-types (no API) is read by the
    running worker, and by a worker started later, from the topic."""
    from aiokafka import AIOKafkaProducer

    declaration = {"name": "trial_started", "version": 1,
                   "properties": {"plan": {"type": "string", "required": True}}}
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topics.event_types, orjson.dumps(declaration),
                                     key=b"trial_started")
    finally:
        await producer.stop()
    async with aiohttp.ClientSession() as session:
        api = Api(session, worker.url, auth=AUTH)
        # a segment write reads the topic to its end before refusing a type
        await api.call("PUT", "/segments/trials", expect=202, json={
            "status": "live", "formula": 'performed trial_started where plan = "pro" ever'})
        _, shown = await api.call("GET", "/event-types/trial_started", expect=200)
        assert shown["source"] == "declared" and shown["version"] == 1
    worker.stop()
    later = worker_factory(settings.model_copy(update={
        "data_dir": tmp_path / "later-data", "web_port": free_port()}))
    later.start()
    await later.wait_ready()
    await wait_segment_applied(later, "trials", 1, settings.partitions)
    async with Publisher(settings) as publisher:
        await publisher.send(_interaction("t1", "c1", "trial_started", plan="pro"))
        await publisher.flush()
    await wait_caught_up(settings)
    result = CliRunner().invoke(cli, ["members", "trials", "--json"], env={
        "SEGMENTFLOW_API_URL": later.url, "SEGMENTFLOW_API_TOKEN": TOKEN})
    assert json.loads(result.output)["members"] == ["c1"], result.output
