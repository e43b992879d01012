"""Write the JSON Schemas of segmentflow's contracts into ``schemas/``.

Publishers validate against these files, so they are checked in and a test
(tests/unit/test_schemas.py) fails when they drift from the models.
Regenerate with ``.venv/bin/python -m models.schema_export``. Output is
deterministic: sorted keys, two-space indent, trailing newline.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from models.changes import MembershipChange
from models.inputs import AccountInput, ContactInput, Interaction, StaticEdit
from models.segments import SegmentDefinition, SegmentDelete

__all__ = ["SCHEMAS", "SCHEMA_DIR", "main", "render", "schemas"]

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

# file stem → (contract, title). One file per topic payload.
SCHEMAS: dict[str, tuple[Any, str]] = {
    "contact-input": (ContactInput, "ContactInput"),
    "account-input": (AccountInput, "AccountInput"),
    "interaction": (Interaction, "Interaction"),
    "static-edit": (StaticEdit, "StaticEdit"),
    "segment-definition": (SegmentDefinition, "SegmentDefinition"),
    "segment-delete": (SegmentDelete, "SegmentDelete"),
    "membership-change": (MembershipChange, "MembershipChange"),
}


def schemas() -> dict[str, dict[str, Any]]:
    """file name → JSON Schema (validation mode: what a publisher may send)."""
    out: dict[str, dict[str, Any]] = {}
    for stem, (contract, title) in SCHEMAS.items():
        schema = TypeAdapter(contract).json_schema(mode="validation")
        _require_tags(schema)
        schema.setdefault("title", title)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://segmentflow.example/schemas/{stem}.schema.json"
        out[f"{stem}.schema.json"] = schema
    return out


def _require_tags(schema: dict[str, Any]) -> None:
    """Make union tags required, as pydantic's validation does.

    A tag with a default (``node``, a window's ``window``, ``op`` of a delete)
    is optional in the generated schema, so a tag-less object would match
    several ``oneOf`` branches; pydantic needs the tag to pick the branch
    (only an upsert may omit ``op``).
    """
    defs: dict[str, Any] = schema.get("$defs", {})
    union_refs = {b.get("$ref", "").rsplit("/", 1)[-1] for b in schema.get("oneOf", [])}
    for name, model in defs.items():
        props = model.get("properties", {})
        tags = [t for t in ("node", "window") if "const" in props.get(t, {})]
        if name in union_refs and props.get("op", {}).get("const") not in (None, "upsert"):
            tags.append("op")
        if tags:
            model["required"] = sorted(set(model.get("required", [])) | set(tags))


def render(schema: dict[str, Any]) -> str:
    """Deterministic text of one schema."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write every schema file; remove stale ``*.schema.json`` ones."""
    target = Path(argv[0]) if argv else SCHEMA_DIR
    target.mkdir(parents=True, exist_ok=True)
    wanted = schemas()
    for stale in target.glob("*.schema.json"):
        if stale.name not in wanted:
            stale.unlink()
    for name, schema in wanted.items():
        (target / name).write_text(render(schema), encoding="utf-8")
        print(f"wrote {target / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
