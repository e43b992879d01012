"""The checked-in JSON Schemas (``schemas/``) equal freshly generated ones,
and real documents validate against them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema

from models.inputs import ContactUpsert, Interaction
from models.schema_export import SCHEMA_DIR, main, render, schemas
from models.segments import SegmentDefinition

REGENERATE = ".venv/bin/python -m models.schema_export"


def test_checked_in_schemas_match_the_models() -> None:
    fresh = schemas()
    on_disk = {p.name for p in SCHEMA_DIR.glob("*.schema.json")}
    assert on_disk == set(fresh), f"schema files differ from the models; run: {REGENERATE}"
    for name, schema in fresh.items():
        text = (SCHEMA_DIR / name).read_text(encoding="utf-8")
        assert text == render(schema), f"schemas/{name} is stale; run: {REGENERATE}"


def test_export_is_deterministic(tmp_path: Path) -> None:
    main([str(tmp_path / "a")])
    main([str(tmp_path / "b")])
    for path in (tmp_path / "a").iterdir():
        text = path.read_text(encoding="utf-8")
        assert text == (tmp_path / "b" / path.name).read_text(encoding="utf-8")
        assert text.endswith("}\n")


def _validator(name: str) -> Any:
    schema = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def test_documents_validate_against_the_schemas() -> None:
    definition = SegmentDefinition(
        id="spring-openers",
        name="Spring openers",
        formula=(
            'performed email_opened where campaign = "spring" at least 3 times within last '
            '30 days and not in segment "unsubscribed" and account.industry in ("Retail")'
        ),
    )
    segment = _validator("segment-definition.schema.json")
    for doc in (
        definition.model_dump(mode="json"),
        definition.model_dump(mode="json", exclude_unset=True),
    ):
        segment.validate(doc)
    contact = _validator("contact-input.schema.json")
    contact.validate({"contact_id": "c1", "attributes": {"city": "Paris"}})  # op optional
    contact.validate({"op": "delete", "contact_id": "c1"})
    contact.validate(ContactUpsert(contact_id="c1").model_dump(mode="json", exclude_unset=True))
    interaction = Interaction(
        event_id="e1",
        contact_id="c1",
        type="purchase",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        properties={"amount": 12.5},
    )
    _validator("interaction.schema.json").validate(interaction.model_dump(mode="json"))


def test_schemas_refuse_what_pydantic_refuses() -> None:
    segment = _validator("segment-definition.schema.json")
    tagless = {"id": "s", "name": "s", "condition": {"field": "x", "op": "=", "value": 1}}
    assert not segment.is_valid(tagless)
    contact = _validator("contact-input.schema.json")
    assert not contact.is_valid({"contact_id": "c1", "typo": 1})
