"""Documents for ``segmentflow produce``: read JSON / JSON lines / YAML,
tell each document's input type, and validate it exactly as ingest does
(the same pydantic models, from the JSON bytes that would be published).

Type rule (when ``--type`` is not given), on the document's keys:
``event_id`` or ``occurred_at`` -> interaction; else ``segment_id`` ->
static-edit; else ``contact_id`` -> contact; else ``account_id`` ->
account; else the type cannot be told and the document is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson
import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from agents.dead_letters import describe_error
from agents.event_types import CloudEventProblem, EventTypeProblem, InteractionGate
from app.api.limits import StructureError, load_yaml
from models.inputs import AccountInput, ContactInput, Interaction, StaticEdit

__all__ = ["INPUT_TYPES", "Checked", "check_documents", "detect_type", "read_documents"]

INPUT_TYPES: dict[str, TypeAdapter[Any]] = {
    "contact": TypeAdapter(ContactInput),
    "account": TypeAdapter(AccountInput),
    "interaction": TypeAdapter(Interaction),
    "static-edit": TypeAdapter(StaticEdit),
}


class DocumentsError(ValueError):
    """The text as a whole cannot be read (not JSON, JSON lines or YAML)."""


def read_documents(text: str) -> list[Any]:
    """Documents of ``text``: one JSON value (a list gives its items), JSON
    lines (one document per line; a line that is not JSON is kept as an
    unreadable document), or YAML (``---`` documents; a list gives its items)."""
    stripped = text.strip()
    if not stripped:
        return []
    try:
        whole = json.loads(stripped)
    except ValueError:
        pass
    else:
        return whole if isinstance(whole, list) else [whole]
    lines = [line for line in stripped.splitlines() if line.strip()]
    if len(lines) > 1 and _json_object(lines[0]):
        return [_json_line(line, n) for n, line in enumerate(lines, 1)]
    try:
        docs = load_yaml(text, all_documents=True)
    except (yaml.YAMLError, StructureError) as exc:
        raise DocumentsError(f"not valid JSON, JSON lines or YAML: {exc}") from exc
    found: list[Any] = []
    for doc in docs:
        if doc is not None:
            found.extend(doc if isinstance(doc, list) else [doc])
    return found


class _Unreadable:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _json_line(line: str, number: int) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:
        return _Unreadable(f"line {number} is not JSON: {exc}")


def detect_type(doc: Any) -> str | None:
    """The input type by shape (module docstring), or None."""
    if not isinstance(doc, dict):
        return None
    if "event_id" in doc or "occurred_at" in doc:
        return "interaction"
    if "segment_id" in doc:
        return "static-edit"
    if "contact_id" in doc:
        return "contact"
    if "account_id" in doc:
        return "account"
    return None


@dataclass
class Checked:
    models: list[BaseModel]
    problems: list[str]  # one line each: "document N (type): why"


def check_documents(docs: list[Any], input_type: str | None, max_bytes: int,
                    gate: InteractionGate | None = None) -> Checked:
    """Validate every document; documents are numbered from 1. ``gate``:
    interactions are checked against the declared event types, as ingest
    checks them (docs/event-types.md)."""
    models: list[BaseModel] = []
    problems: list[str] = []
    for n, doc in enumerate(docs, 1):
        if isinstance(doc, _Unreadable):
            problems.append(f"document {n}: {doc.reason}")
            continue
        kind = input_type or detect_type(doc)
        if kind is None:
            problems.append(f"document {n}: cannot tell its type (no event_id, occurred_at, "
                            "segment_id, contact_id or account_id); use --type")
            continue
        try:
            raw = orjson.dumps(doc)
        except TypeError as exc:  # YAML-only values (sets, binary), huge integers
            problems.append(f"document {n} ({kind}): not representable as JSON: {exc}")
            continue
        if len(raw) > max_bytes:
            problems.append(f"document {n} ({kind}): {len(raw)} bytes exceeds {max_bytes}")
            continue
        try:
            if kind == "interaction" and gate is not None:
                models.append(gate.decode(raw)[0])
            else:
                models.append(INPUT_TYPES[kind].validate_json(raw))
        except (EventTypeProblem, CloudEventProblem) as exc:
            problems.append(f"document {n} ({kind}): {exc}")
        except ValidationError as exc:
            problems.append(f"document {n} ({kind}): {describe_error(exc)}")
    return Checked(models, problems)
