"""The AsyncAPI document (schemas/asyncapi.yaml) is the models' and the
topics', it describes the records the code really writes, and the AsyncAPI
parser (tools/asyncapi, pinned in its package-lock.json) accepts it and
rejects broken variants of it."""

from __future__ import annotations

import copy
import shutil
import subprocess
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import jsonschema
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from pydantic import TypeAdapter

from agents.codec import encode_envelope, envelope_around
from app.api.ops import asyncapi_for
from app.faust_app import Topics, _declare_topics, create_app
from app.settings import Settings
from models.asyncapi import (
    ASYNCAPI_PATH,
    STATE_TOPICS,
    TOPICS,
    asyncapi_document,
    render_json,
    render_yaml,
)
from models.changes import Cause, MembershipChange
from models.inputs import AccountDelete, ContactDelete, ContactUpsert, Interaction, StaticEdit
from models.records import DeadLetter, EvaluatorInput, MembershipSnapshot
from models.segments import SegmentDefinition, SegmentDelete
from runtime.dead_letters import dead_letter_record
from runtime.outputs import change_record, snapshot_record

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools/asyncapi"
REGENERATE = "make schemas (or .venv/bin/python -m models.asyncapi)"


def test_committed_document_matches_the_models() -> None:
    text = ASYNCAPI_PATH.read_text(encoding="utf-8")
    assert text == render_yaml(asyncapi_document()), f"{ASYNCAPI_PATH} is stale; run {REGENERATE}"
    assert yaml.safe_load(text) == asyncapi_document()


def test_a_model_change_is_drift(monkeypatch) -> None:
    """What the drift test compares really follows the models."""
    before = render_yaml(asyncapi_document())
    monkeypatch.setattr(DeadLetter, "model_config", {**DeadLetter.model_config,
                                                     "title": "Renamed"})
    DeadLetter.model_rebuild(force=True)
    try:
        assert render_yaml(asyncapi_document()) != before
    finally:
        monkeypatch.undo()
        DeadLetter.model_rebuild(force=True)
    assert render_yaml(asyncapi_document()) == before


def test_every_topic_is_a_channel_with_its_partitions_and_cleanup_policy() -> None:
    """Names, partition counts and compaction are the ones the worker declares."""
    settings = Settings(topic_prefix="aa-test", partitions=3,
                        interactions_topic="crm.events")
    declared = _declare_topics(faust.App("aa-test", store="memory://"), settings)
    documented = {topic.name for topic in TOPICS}
    every = {field.name for field in fields(Topics)}
    assert documented <= every
    assert every - documented <= set(STATE_TOPICS), "a topic without a channel: models/asyncapi.py"
    doc = asyncapi_document({name: getattr(settings.topics, name) for name in documented},
                            partitions=settings.partitions, group_id=settings.topic_prefix)
    assert set(doc["channels"]) == documented
    for name, channel in doc["channels"].items():
        topic = getattr(declared, name)
        kafka = channel["bindings"]["kafka"]
        assert channel["address"] == kafka["topic"] == topic.get_topic_name()
        # every topic has the deployment's partitions but event-types (one, for order)
        assert kafka["partitions"] == topic.partitions == (1 if name == "event_types" else 3)
        policy = ["compact"] if topic.compacting else ["delete"]
        assert kafka["topicConfiguration"]["cleanup.policy"] == policy, name
    assert doc["channels"]["interactions"]["address"] == "crm.events"
    assert doc["channels"]["memberships"]["bindings"]["kafka"]["topicConfiguration"] == {
        "cleanup.policy": ["compact"]}
    groups = {op["bindings"]["kafka"]["groupId"]["enum"][0]
              for op in doc["operations"].values() if "bindings" in op}
    assert groups == {"aa-test-ingest"}  # the ingest loop's group (agents/ingest.py ingest_group)
    assert "aa-test-evaluator" in doc["operations"]["receiveEvaluatorInput"]["description"]


def _payload_validator(doc: dict[str, Any], message: str) -> jsonschema.Draft7Validator:
    payload = doc["components"]["messages"][message]["payload"]
    return jsonschema.Draft7Validator({**payload, "components": doc["components"]})


NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def test_records_the_code_writes_match_the_document() -> None:
    doc = asyncapi_document()
    segment = SegmentDefinition(id="paris", name="Paris", status="live",
                                formula='city = "Paris" and performed purchase at least 2 times '
                                        'within last 30 days')
    envelopes = [
        encode_envelope("contact", ContactUpsert(contact_id="c1", attributes={"city": "Paris"})),
        encode_envelope("contact", ContactDelete(contact_id="c1")),
        envelope_around("contact", b'{"contact_id": "c2"}'),  # ingest: as upstream wrote it
        encode_envelope("interaction", Interaction(event_id="e1", contact_id="c1",
                                                   type="purchase", occurred_at=NOW)),
        encode_envelope("static_edit", StaticEdit(segment_id="paris", contact_id="c1", op="add")),
        encode_envelope("account", AccountDelete(account_id="a1")),
        encode_envelope("segment", segment),
        encode_envelope("segment_delete", SegmentDelete(segment_id="paris")),
        # legacy: the former Faust evaluator's clock tick and backfill chunk
        encode_envelope("tick", {"at": NOW.isoformat()}),
        encode_envelope("backfill", {"segment_id": "paris", "version": 1}),
        encode_envelope("clock", {"to": NOW.isoformat()}),  # POST /clock/advance
    ]
    evaluator_input = _payload_validator(doc, "evaluatorInput")
    adapter = TypeAdapter(EvaluatorInput)
    for raw in envelopes:
        adapter.validate_json(raw)
        evaluator_input.validate(yaml.safe_load(raw))

    joined = MembershipChange(segment_id="paris", contact_id="c1", change="joined", at=NOW,
                              cause=Cause(kind="contact_update"), segment_version=1, sequence=1)
    left = joined.model_copy(update={"change": "left", "sequence": 2})
    key, value = change_record(joined)
    assert key == b"c1"
    _payload_validator(doc, "membershipChange").validate(yaml.safe_load(value))
    key, value, _partition = snapshot_record(joined, 8)
    assert jsonschema.Draft7Validator(
        {**doc["components"]["schemas"]["MembershipKey"]}).is_valid(key.decode())
    MembershipSnapshot.model_validate_json(value)
    _payload_validator(doc, "membershipSnapshot").validate(yaml.safe_load(value))
    assert snapshot_record(left, 8)[1] is None  # the tombstone message: no value
    _payload_validator(doc, "membershipTombstone").validate(None)

    dead_letters = _payload_validator(doc, "deadLetter")
    for raw, max_bytes in ((b'{"contact_id": oops', 1000), (b"x" * 100, 10), (None, 10)):
        record = dead_letter_record(source_topic="segmentflow.contacts", partition=2, offset=7,
                                    raw=raw, reason="invalid input", max_bytes=max_bytes)
        DeadLetter.model_validate(record)
        dead_letters.validate(record)


def test_the_document_refuses_what_the_service_refuses() -> None:
    doc = asyncapi_document()
    contact = _payload_validator(doc, "contactInput")
    assert contact.is_valid({"contact_id": "c1", "attributes": {"city": "Paris"}})
    assert not contact.is_valid({"contact_id": "no spaces"})
    assert not contact.is_valid({"contact_id": "c1", "colour": "red"})  # unknown field
    interaction = _payload_validator(doc, "interaction")
    # Which types are declared is data (ingest checks it); the schema checks the name's form.
    assert not interaction.is_valid({"event_id": "e1", "contact_id": "c1", "type": "tele pathy",
                                     "occurred_at": NOW.isoformat()})
    # A delete must say so: without "op" the segment-definitions topic reads a definition.
    assert not _payload_validator(doc, "segmentDelete").is_valid({"segment_id": "paris"})
    assert _payload_validator(doc, "segmentDelete").is_valid({"op": "delete",
                                                              "segment_id": "paris"})
    segment = _payload_validator(doc, "segmentDefinition")
    tree = {"id": "s", "name": "s", "condition": {"node": "not", "arg": {
        "node": "compare", "field": "city", "op": "=", "value": "Paris"}}}
    SegmentDefinition.model_validate(tree)
    assert segment.is_valid(tree)
    tree["condition"]["arg"]["node"] = "nonsense"
    assert not segment.is_valid(tree)


# -- the AsyncAPI parser ---------------------------------------------------------------


def _validate(tmp_path: Path, document: dict[str, Any] | None = None,
              name: str = "doc.yaml") -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not (TOOLS / "node_modules/@asyncapi/parser").is_dir():
        # make test / make lint install it; a missing validator is a failure, not a pass
        pytest.fail("the AsyncAPI parser is not installed: make asyncapi-tools")
    path = ASYNCAPI_PATH
    if document is not None:
        path = tmp_path / name
        path.write_text(render_json(document) if name.endswith(".json")
                        else render_yaml(document), encoding="utf-8")
    return subprocess.run([node, str(TOOLS / "validate.mjs"), str(path)], capture_output=True,
                          text=True, timeout=120)


def test_the_asyncapi_parser_accepts_the_committed_document(tmp_path) -> None:
    result = _validate(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid AsyncAPI 3.0.0 (10 channels, 12 operations, 17 messages)" in result.stdout


def _broken() -> dict[str, Any]:
    def action(doc: dict[str, Any]) -> None:
        doc["operations"]["receiveContacts"]["action"] = "consume"

    def dangling(doc: dict[str, Any]) -> None:
        del doc["components"]["schemas"]["Cause"]

    def foreign_message(doc: dict[str, Any]) -> None:
        # an operation may only send what its channel carries
        doc["operations"]["sendMemberships"]["messages"].append(
            {"$ref": "#/channels/dead_letters/messages/deadLetter"})

    def bad_payload(doc: dict[str, Any]) -> None:
        doc["components"]["schemas"]["DeadLetter"]["properties"]["size"]["type"] = "whole"

    def bad_binding(doc: dict[str, Any]) -> None:
        doc["channels"]["memberships"]["bindings"]["kafka"]["partitions"] = "eight"

    return {"action": action, "dangling $ref": dangling, "foreign message": foreign_message,
            "bad payload schema": bad_payload, "bad Kafka binding": bad_binding}


# case -> what the parser says
REJECTED = {
    "action": "error asyncapi-document-resolved at operations.receiveContacts.action",
    "dangling $ref": "error invalid-ref at components.schemas.MembershipChange.properties.cause",
    "foreign message": "error asyncapi3-operation-messages-from-referred-channel",
    "bad payload schema": "at components.schemas.DeadLetter.properties.size.type",
    "bad Kafka binding": "at channels.memberships.bindings.kafka.partitions",
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_the_asyncapi_parser_rejects_broken_documents(tmp_path, case) -> None:
    doc = copy.deepcopy(asyncapi_document())
    _broken()[case](doc)
    result = _validate(tmp_path, doc, name="broken.json")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "INVALID" in result.stdout and REJECTED[case] in result.stdout, result.stdout


# -- served by the API ------------------------------------------------------------------


def test_default_settings_serve_the_committed_document() -> None:
    settings = Settings(topic_prefix="segmentflow", partitions=8, contacts_topic=None,
                        accounts_topic=None, interactions_topic=None,
                        segment_definitions_topic=None, static_edits_topic=None)
    assert asyncapi_for(settings) == yaml.safe_load(ASYNCAPI_PATH.read_text(encoding="utf-8"))


async def test_the_worker_serves_the_document_of_its_own_topics() -> None:
    settings = Settings(topic_prefix="served", partitions=3,
                        static_edits_topic="crm.static-edits", api_token="secret")
    app = create_app(settings)
    async with TestClient(TestServer(app.web.web_app)) as client:
        response = await client.get("/asyncapi.json")  # open, like /openapi.json
        assert response.status == 200
        served = await response.json()
        response = await client.get("/asyncapi.yaml")
        assert response.status == 200
        assert response.content_type == "application/yaml"
        assert yaml.safe_load(await response.text()) == served
    assert served == asyncapi_for(settings)
    channels = served["channels"]
    assert channels["contacts"]["address"] == "served.contacts"
    assert channels["static_edits"]["bindings"]["kafka"]["topic"] == "crm.static-edits"
    assert {c["bindings"]["kafka"]["partitions"] for name, c in channels.items()
            if name != "event_types"} == {3}
