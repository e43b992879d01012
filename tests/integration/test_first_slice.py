"""The first vertical slice on the real broker: a live profile segment defined
on the segment-definitions topic, contact upserts on the contacts topic,
joined/left on membership-changes, garbage on the dead-letter topic."""

from __future__ import annotations

import base64

import pytest

from app.client import Publisher
from models.inputs import ContactUpsert
from models.segments import SegmentDefinition
from tests.integration.helpers import wait_segment_applied

pytestmark = pytest.mark.kafka


async def test_profile_segment_join_leave_and_dead_letter(settings, worker, reader):
    changes = await reader(settings.topics.membership_changes)
    dead_letters = await reader(settings.topics.dead_letters)
    async with Publisher(settings) as publisher:
        await publisher.send(SegmentDefinition(
            id="paris", name="Contacts in Paris", formula='city = "Paris"', status="live"))
        await publisher.flush()
        await wait_segment_applied(worker, "paris", version=1, partitions=settings.partitions)

        await publisher.send(ContactUpsert(contact_id="c1", attributes={"city": "Paris"}))
        await publisher.send(ContactUpsert(contact_id="c2", attributes={"city": "Lyon"}))
        await publisher.flush()
        await changes.wait_for(lambda values: len(values) >= 1)

        # An update that does not touch the condition must not emit anything,
        # and garbage must not stop the worker.
        await publisher.send(ContactUpsert(contact_id="c1", attributes={"age": 41}))
        await publisher.send_raw(settings.topics.contacts, b'{"contact_id": "c9", oops', key=b"c9")
        await publisher.send(ContactUpsert(contact_id="c1", attributes={"city": "Berlin"}))
        await publisher.flush()
        await changes.wait_for(lambda values: len(values) >= 2)
        await dead_letters.wait_for(lambda values: len(values) >= 1)

    final = await changes.settle()
    assert [(c["segment_id"], c["contact_id"], c["change"], c["sequence"]) for c in final] == [
        ("paris", "c1", "joined", 1),
        ("paris", "c1", "left", 2),
    ]
    assert {c["cause"]["kind"] for c in final} == {"contact_update"}
    assert all(c["segment_version"] == 1 for c in final)

    [letter] = await dead_letters.settle()
    assert letter["source_topic"] == settings.topics.contacts
    assert "Invalid JSON" in letter["reason"]
    assert base64.b64decode(letter["raw_base64"]) == b'{"contact_id": "c9", oops'
    assert letter["offset"] >= 0 and letter["partition"] >= 0


async def test_invalid_inputs_are_dead_lettered_with_reasons(settings, worker, reader):
    dead_letters = await reader(settings.topics.dead_letters)
    async with Publisher(settings) as publisher:
        # wrong type, missing id, unknown event type, empty value
        await publisher.send_raw(settings.topics.contacts, b'{"contact_id": 5}')
        await publisher.send_raw(settings.topics.contacts, b'{"attributes": {}}')
        await publisher.send_raw(
            settings.topics.interactions,
            b'{"event_id": "e1", "contact_id": "c1", "type": "telepathy", '
            b'"occurred_at": "2026-01-01T00:00:00Z"}',
        )
        await publisher.send_raw(settings.topics.contacts, None, key=b"c1")
        await publisher.flush()
        letters = await dead_letters.wait_for(lambda values: len(values) >= 4)
    reasons = sorted(letter["reason"] for letter in letters)
    assert any("contact_id: Input should be a valid string" in r for r in reasons), reasons
    assert any("contact_id: Field required" in r for r in reasons), reasons
    # event types are data (docs/event-types.md): the reason names the type and how to declare it
    assert any(r.startswith('undeclared event type "telepathy"') and "PUT /event-types/" in r
               for r in reasons), reasons
    assert any("empty message" in r for r in reasons), reasons
