"""``segmentflow event-types apply|list|show``: event-type declarations
through a worker's API (docs/event-types.md).

``apply -f FILE`` reads declarations (YAML or JSON: one, a list, several
YAML documents, or ``{"event_types": [...]}``), checks every one with the
model first (nothing is written if one is invalid, unless ``--partial``),
then PUTs each; a line per declaration: declared (vN) / unchanged (vN) /
refused (with the reason). Exit 1 when anything was refused.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import ValidationError

from agents.dead_letters import describe_error
from app.api.limits import StructureError, load_yaml
from app.api_client import ApiClient, ApiClientError
from app.cli_api import api_command, emit, table
from models.event_types import EventTypeDeclaration, EventTypeRegistry
from models.formula.parser import event_type_references
from models.segments import SegmentDefinition

__all__ = ["event_type_check", "register_event_type_commands"]

_SERVER_FIELDS = ("version", "updated_at")


def read_declarations(path: str) -> list[Any]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    try:
        docs = [d for d in load_yaml(text, all_documents=True) if d is not None]
    except (yaml.YAMLError, StructureError) as exc:
        raise click.ClickException(f"{path}: not valid YAML or JSON: {exc}") from exc
    found: list[Any] = []
    for doc in docs:
        if isinstance(doc, dict) and isinstance(doc.get("event_types"), list):
            doc = doc["event_types"]
        found.extend(doc if isinstance(doc, list) else [doc])
    if not found:
        raise click.ClickException(f"{path}: no event type declarations found")
    return found


def _check(doc: Any) -> str | None:
    """Why the model refuses ``doc`` (the server sets the version), or None."""
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        return "every declaration needs a 'name'"
    try:
        EventTypeDeclaration.model_validate(
            {k: v for k, v in doc.items() if k not in _SERVER_FIELDS})
    except ValidationError as exc:
        return describe_error(exc).removeprefix("invalid input: ")
    return None


def _properties(decl: dict[str, Any]) -> str:
    parts = [f"{name}: {spec['type']}{' (required)' if spec.get('required') else ''}"
             for name, spec in sorted(decl.get("properties", {}).items())]
    return ", ".join(parts) or "-"


def register_event_type_commands(cli: click.Group) -> None:
    @cli.group("event-types")
    def event_types() -> None:
        """Event-type declarations: the interaction types ingest accepts."""

    @api_command(event_types, "apply")
    @click.option("-f", "--filename", "path", required=True,
                  help="Declarations (YAML or JSON; - for stdin).")
    @click.option("--partial", is_flag=True,
                  help="Apply the valid declarations even if some are invalid.")
    def apply(client: ApiClient, as_json: bool, path: str, partial: bool) -> None:
        """Declare event types (each change is a new version)."""
        docs = read_declarations(path)
        results: list[dict[str, Any]] = []
        problems = {i: p for i, doc in enumerate(docs) if (p := _check(doc)) is not None}
        names = [doc.get("name") if isinstance(doc, dict) else None for doc in docs]
        for i, name in enumerate(names):
            if name is not None and names.index(name) != i and i not in problems:
                problems[i] = f"{name} is declared twice in the file"
        for i, doc in enumerate(docs):
            name = names[i] if isinstance(names[i], str) else None
            if i in problems:
                results.append({"index": i + 1, "name": name, "result": "refused",
                                "reason": problems[i]})
                continue
            if problems and not partial:
                results.append({"index": i + 1, "name": name, "result": "not applied",
                                "reason": "another declaration is invalid (--partial "
                                          "applies the valid ones)"})
                continue
            body = {k: v for k, v in doc.items() if k not in _SERVER_FIELDS}
            try:
                answer = client.request("PUT", f"/event-types/{name}", body=body)
            except ApiClientError as exc:
                if exc.status == 0:
                    raise
                results.append({"index": i + 1, "name": name, "result": "refused",
                                "reason": exc.message})
                continue
            results.append({"index": i + 1, "name": name, "version": answer["version"],
                            "result": answer.get("result", "declared")})
        lines = []
        for r in results:
            who = f"event-type/{r['name']}" if r["name"] else f"document {r['index']}"
            if "version" in r:
                lines.append(f"{who} {r['result']} (v{r['version']})")
            else:
                lines.append(f"{who} {r['result']}: {r['reason']}")
        emit(as_json, results, "\n".join(lines))
        if any(r["result"] in ("refused", "not applied") for r in results):
            sys.exit(1)

    @api_command(event_types, "list")
    def list_(client: ApiClient, as_json: bool) -> None:
        """Event types in force (built-in and declared), with their properties."""
        payload = client.get("/event-types")
        rows = [{**d, "props": _properties(d),
                 "status": "retired" if d.get("retired") else "accepted"}
                for d in payload["event_types"]]
        human = table(rows, ["name", "version", "source", "status", "time_field", "props"])
        if payload.get("accept_undeclared"):
            human += "\n(undeclared types are accepted too: " \
                     "SEGMENTFLOW_ACCEPT_UNDECLARED_EVENT_TYPES=true)"
        emit(as_json, payload, human)

    @api_command(event_types, "show")
    @click.argument("name")
    def show(client: ApiClient, as_json: bool, name: str) -> None:
        """One event type's declaration in force."""
        d = client.get(f"/event-types/{name}")
        lines = [f"name:        {d['name']}", f"version:     {d['version']} ({d['source']})",
                 f"status:      {'retired' if d.get('retired') else 'accepted'}",
                 f"time field:  {d['time_field']}",
                 f"description: {d.get('description') or '-'}",
                 "properties:  " + ("any" if d["additional_properties"] and not d["properties"]
                                    else "")]
        for prop, spec in sorted(d["properties"].items()):
            flags = " required" if spec.get("required") else ""
            note = f" - {spec['description']}" if spec.get("description") else ""
            lines.append(f"  {prop}: {spec['type']}{flags}{note}")
        if d["properties"]:
            lines.append("  (others: " + ("allowed)" if d["additional_properties"]
                                          else "refused)"))
        emit(as_json, d, "\n".join(lines))


def event_type_check(client: ApiClient) -> Callable[[SegmentDefinition], str | None]:
    """What ``segmentflow apply`` checks before writing anything: a formula
    naming an event type the API does not accept is refused, at its line
    and column, as the API would (docs/event-types.md)."""
    try:
        payload = client.get("/event-types")
    except ApiClientError as exc:
        if exc.status == 0:
            raise
        return lambda _definition: None  # a worker without event types: the API decides
    if payload.get("accept_undeclared"):
        return lambda _definition: None
    registry = EventTypeRegistry({}, {d["name"]: EventTypeDeclaration.model_validate(
        {k: v for k, v in d.items() if k != "source"}) for d in payload["event_types"]})

    def problem(definition: SegmentDefinition) -> str | None:
        if not definition.formula:
            return None
        for name, line, column in event_type_references(definition.formula):
            if not registry.accepts(name):
                return (f"formula line {line}, column {column}: "
                        f"{registry.undeclared_reason(name, payload.get('topic'))}")
        return None

    return problem
