"""``segmentflow apply -f``: every document is checked before any is
written, and each gets a line: created / updated / unchanged / refused (with
the document's number, its id and the reason) / not applied.

The checks, on this side of the API, are the ones a write would make: the
definition model (as the API fills it in), ids unique in the file, and the
references of the file's segments together with the segments the API
already has (a cycle, a formula that does not compile). All or nothing by
default: one refused document and nothing is written. ``--partial`` writes
the valid ones. Exit code 1 when anything was refused.

``--dry-run`` writes nothing: each valid document is previewed over the
current contacts and their retained history instead (``POST /preview`` with
the segment's id): its size, and exactly who would join and who would leave
compared with the members of the version in force.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import click
from pydantic import ValidationError

from agents.dead_letters import describe_error
from app.api_client import ApiClient, ApiClientError
from app.cli_api import api_command, emit, read_segment_items
from app.cli_event_types import event_type_check
from app.settings import Settings
from engine.catalog import Catalog
from models.segments import SegmentDefinition

__all__ = ["register_apply_command"]

_SERVER_FIELDS = {"version", "created_at", "updated_at"}


@dataclass
class Item:
    index: int  # from 1, in file order
    doc: Any
    id: str | None = None
    current: dict[str, Any] | None = None
    result: str = "pending"  # created / updated / unchanged / refused / not applied
    reason: str | None = None
    version: int | None = None
    impact: dict[str, Any] | None = None  # --dry-run: the preview's answer
    warnings: list[str] = field(default_factory=list)  # fields never seen (typos?)

    def line(self) -> str:
        who = f"segment/{self.id}" if self.id else f"document {self.index}"
        if self.result in ("created", "updated", "unchanged"):
            return f"{who} {self.result} (v{self.version})" + "".join(
                f"\n  warning: {w}" for w in self.warnings)
        where = f" (document {self.index})" if self.id else ""
        return f"{who} {self.result}{where}: {self.reason}"

    def impact_line(self) -> str:
        answer = self.impact or {}
        impact = answer.get("impact", {})
        lines = [f"segment/{self.id} would have {answer.get('size', 0):,} members: "
                 f"+{impact.get('join', 0):,} join, -{impact.get('leave', 0):,} leave"
                 + ("" if answer.get("complete", True) else " (partial: some partitions "
                    "did not answer)")]
        for key, sign in (("join_sample", "+"), ("leave_sample", "-")):
            if impact.get(key):
                lines.append(f"  {sign} " + ", ".join(impact[key]))
        note = (answer.get("history") or {}).get("note")
        if note:
            lines.append(f"  note: {note}")
        lines += [f"  warning: {w}" for w in answer.get("warnings", [])]
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        out = {"index": self.index, "id": self.id, "result": self.result}
        if self.impact is not None:
            out["preview"] = self.impact
        if self.warnings:
            out["warnings"] = self.warnings
        if self.version is not None:
            out["version"] = self.version
        if self.reason is not None:
            out["reason"] = self.reason
        return out


def _unchanged(doc: dict[str, Any], current: dict[str, Any]) -> bool:
    return all(current.get(k) == v for k, v in doc.items() if k not in _SERVER_FIELDS)


def _values(doc: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    """The definition the API would build from ``doc`` (app/api/writes.py)."""
    values = {k: v for k, v in doc.items() if k not in _SERVER_FIELDS}
    if current is not None:
        values.setdefault("status", current["status"])
        values.setdefault("name", current["name"])
        values["version"] = current["version"] + 1
    else:
        values.setdefault("name", values["id"])
    return values


def _known_catalog(listing: list[dict[str, Any]]) -> Catalog:
    """The API's segments, compiled (their references matter for cycles)."""
    catalog = Catalog.empty(Settings().limits)
    for s in listing:
        try:
            catalog = catalog.put(SegmentDefinition.model_validate(
                {k: s[k] for k in ("id", "name", "kind", "formula", "status", "version")}))
        except (ValidationError, ValueError, KeyError, RecursionError):
            continue  # its own problem, not this file's
    return catalog


def _current(client: ApiClient, segment_id: str) -> tuple[dict[str, Any] | None, bool]:
    """The definition in force (None: new) and whether a newer one was refused."""
    try:
        summary = client.get(f"/segments/{segment_id}")
    except ApiClientError as exc:
        if exc.status in (400, 404, 422):  # new, or an id the model check refuses
            return None, False
        raise
    return summary["definition"], summary.get("refused_version") is not None


def check(client: ApiClient, docs: list[Any]) -> list[Item]:
    """Every document checked; none written. Refused ones say why."""
    catalog = _known_catalog(client.get("/segments")["segments"])
    undeclared = event_type_check(client)  # formulas name declared event types only
    items = [Item(n, doc) for n, doc in enumerate(docs, 1)]
    seen: dict[str, int] = {}
    for item in items:
        doc = item.doc
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
            item.result, item.reason = "refused", f"every segment needs an 'id' (got {doc!r:.80})"
            continue
        item.id = doc["id"]
        if item.id in seen:
            item.result = "refused"
            item.reason = f"id also in document {seen[item.id]}"
            continue
        seen[item.id] = item.index
        item.current, refused = _current(client, item.id)
        try:
            defn = SegmentDefinition.model_validate(_values(doc, item.current))
            if (problem := undeclared(defn)) is not None:
                item.result, item.reason = "refused", problem
                continue
            catalog = catalog.put(defn)
        except ValidationError as exc:
            item.result = "refused"
            item.reason = describe_error(exc).replace("invalid input: ", "invalid: ", 1)
            continue
        except RecursionError:
            item.result, item.reason = "refused", "it nests too deeply"
            continue
        except ValueError as exc:  # CycleError, CompileError
            item.result, item.reason = "refused", str(exc)
            continue
        # A refused newer version: writing the file again replaces it.
        if item.current is not None and not refused and _unchanged(doc, item.current):
            item.result, item.version = "unchanged", item.current["version"]
    return items


def write(client: ApiClient, items: list[Item], partial: bool) -> None:
    """PUT what is pending. A write the API refuses is reported; without
    ``partial`` the writes stop there."""
    stop = False
    for item in items:
        if item.result != "pending":
            continue
        if stop:
            item.result, item.reason = "not applied", "an earlier write was refused"
            continue
        try:
            accepted = client.request("PUT", f"/segments/{item.id}", body=item.doc)
        except ApiClientError as exc:
            if exc.status == 0:
                raise
            item.result, item.reason = "refused", str(exc).replace("\n", " ")
            stop = not partial
            continue
        item.result = "created" if item.current is None else "updated"
        item.version = accepted["version"]
        item.warnings = list(accepted.get("warnings", []))


def preview_items(client: ApiClient, items: list[Item], sample: int) -> None:
    """Preview each pending document; write nothing."""
    for item in items:
        if item.result != "pending":
            continue
        values = {k: v for k, v in item.doc.items() if k not in _SERVER_FIELDS}
        try:
            item.impact = client.request("POST", "/preview", body=values,
                                         query={"sample": sample})
        except ApiClientError as exc:
            if exc.status == 0:
                raise
            item.result, item.reason = "refused", str(exc).replace("\n", " ")
            continue
        item.result = "would create" if item.current is None else "would update"


def register_apply_command(cli: click.Group) -> None:
    @api_command(cli, "apply")
    @click.option("-f", "--filename", "path", required=True,
                  help="YAML or JSON file of one or many segments ('-' for stdin).")
    @click.option("--partial", is_flag=True,
                  help="Write the valid documents even if some are refused.")
    @click.option("--dry-run", is_flag=True,
                  help="Write nothing: show each segment's size and exactly who would "
                       "join and leave.")
    @click.option("--sample", default=10, show_default=True,
                  help="With --dry-run: contact ids listed per join / leave.")
    def apply_(client: ApiClient, as_json: bool, path: str, partial: bool, dry_run: bool,
               sample: int) -> None:
        """Create or update segments from a file (like kubectl apply): one line
        per document; nothing is written if any is refused (unless --partial)."""
        items = check(client, read_segment_items(path))
        refused = [i for i in items if i.result == "refused"]
        if dry_run:
            preview_items(client, items, sample)
            emit(as_json, [i.as_json() for i in items], "\n".join(
                i.impact_line() if i.impact is not None else i.line() for i in items))
            if any(i.result == "refused" for i in items):
                sys.exit(1)
            return
        if refused and not partial:
            for item in items:
                if item.result == "pending":
                    item.result, item.reason = "not applied", "another document was refused"
        else:
            write(client, items, partial)
        emit(as_json, [i.as_json() for i in items], "\n".join(i.line() for i in items))
        refused = [i for i in items if i.result == "refused"]
        if refused:
            done = sum(i.result in ("created", "updated") for i in items)
            click.echo(f"error: {len(refused)} of {len(items)} documents refused; "
                       f"{done} written" + ("" if partial else " (--partial writes the "
                                             "valid ones)"), err=True)
            sys.exit(1)
