"""Inputs keep their meaning through the evaluator's envelope."""

from __future__ import annotations

import orjson
from pydantic import TypeAdapter

from agents.codec import decode_envelope, encode_envelope, envelope_around
from models.inputs import ContactDelete, ContactInput, ContactUpsert


def roundtrip(model):
    kind, body = decode_envelope(encode_envelope("contact", model))
    assert kind == "contact"
    return TypeAdapter(ContactInput).validate_python(body)


def test_delete_stays_a_delete() -> None:
    assert roundtrip(ContactDelete(contact_id="c1")) == ContactDelete(contact_id="c1")


def test_absent_account_stays_absent_and_null_stays_null() -> None:
    kept = roundtrip(ContactUpsert(contact_id="c1", attributes={"a": 1}))
    assert "account_id" not in kept.model_fields_set
    cleared = roundtrip(ContactUpsert(contact_id="c1", account_id=None))
    assert "account_id" in cleared.model_fields_set and cleared.account_id is None


def test_envelope_around_keeps_the_document_as_written():
    # Ingest forwards validated input without re-encoding it: the envelope
    # must decode to exactly the document upstream wrote, whatever its spacing.
    for raw in (b'{"contact_id":"c1","attributes":{"city":"Paris"}}',
                b' {\n  "contact_id": "c\\u00e9", "attributes": {"n": 1.5e3} }\n',
                '{"contact_id": "ü", "attributes": {}}'.encode()):
        kind, body = decode_envelope(envelope_around("contact", raw))
        assert kind == "contact"
        assert body == orjson.loads(raw)
