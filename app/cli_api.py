"""CLI commands that talk to a worker's HTTP API: apply, list, show, members,
explain, preview, activate, stop, delete.

Human-readable tables by default, ``--json`` for scripts. Exit codes: 0 ok,
1 refused by the API (the message says why), 2 usage error (click),
3 service unreachable.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import yaml

from app.api.limits import StructureError, load_yaml
from app.api_client import ApiClient, ApiClientError

__all__ = ["load_documents", "register_api_commands", "table"]

DEFAULT_URL = "http://127.0.0.1:6066"
_SERVER_FIELDS = {"version", "created_at", "updated_at"}


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain left-aligned table with an upper-case header."""
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
              for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def load_documents(path: str) -> list[dict[str, Any]]:
    """Segment definitions from a YAML or JSON file (``-``: stdin): one
    document, several YAML documents, a list, or ``{"segments": [...]}``."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    try:
        docs = [d for d in load_yaml(text, all_documents=True) if d is not None]
    except (yaml.YAMLError, StructureError) as exc:
        raise click.ClickException(f"{path}: not valid YAML or JSON: {exc}") from exc
    found: list[dict[str, Any]] = []
    for doc in docs:
        if isinstance(doc, dict) and isinstance(doc.get("segments"), list):
            doc = doc["segments"]
        for item in doc if isinstance(doc, list) else [doc]:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise click.ClickException(f"{path}: every segment needs an 'id' (got {item!r})")
            found.append(item)
    if not found:
        raise click.ClickException(f"{path}: no segment definitions found")
    return found


def _api_command(group: click.Group, name: str | None = None) -> Callable[..., Any]:
    """Adds --url/--token/--json and turns API errors into messages + exit codes."""

    def decorate(fn: Callable[..., Any]) -> Any:
        @group.command(name or fn.__name__.replace("_", "-"))
        @click.option("--url", envvar="SEGMENTFLOW_API_URL", default=DEFAULT_URL,
                      show_default=True, help="Worker API (env SEGMENTFLOW_API_URL).")
        @click.option("--token", envvar="SEGMENTFLOW_API_TOKEN", default=None,
                      help="Bearer token for writes (env SEGMENTFLOW_API_TOKEN).")
        @click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
        @functools.wraps(fn)
        def wrapper(url: str, token: str | None, as_json: bool, **kwargs: Any) -> None:
            client = ApiClient(url, token)
            try:
                fn(client, as_json, **kwargs)
            except ApiClientError as exc:
                click.echo(f"error: {exc}", err=True)
                sys.exit(3 if exc.status == 0 else 1)

        return wrapper

    return decorate


def _emit(as_json: bool, payload: Any, human: str) -> None:
    click.echo(json.dumps(payload, indent=2, ensure_ascii=False) if as_json else human)


def _pages(client: ApiClient, segment_id: str, limit: int, every: bool) -> Iterator[str]:
    cursor = None
    while True:
        page = client.get(f"/segments/{segment_id}/members", limit=limit, cursor=cursor)
        yield from page["members"]
        cursor = page["next_cursor"]
        if not every or cursor is None:
            return


def _unchanged(doc: dict[str, Any], current: dict[str, Any]) -> bool:
    return all(current.get(k) == v for k, v in doc.items() if k not in _SERVER_FIELDS)


def register_api_commands(cli: click.Group) -> None:
    @_api_command(cli, "apply")
    @click.option("-f", "--filename", "path", required=True,
                  help="YAML or JSON file of one or many segments ('-' for stdin).")
    def apply_(client: ApiClient, as_json: bool, path: str) -> None:
        """Create or update segments from a file (like kubectl apply)."""
        results = []
        for doc in load_documents(path):
            segment_id = doc["id"]
            try:
                current = client.get(f"/segments/{segment_id}")["definition"]
            except ApiClientError as exc:
                if exc.status != 404:
                    raise
                current = None
            if current is not None and _unchanged(doc, current):
                results.append({"id": segment_id, "result": "unchanged",
                                "version": current["version"]})
                continue
            accepted = client.request("PUT", f"/segments/{segment_id}", body=doc)
            results.append({"id": segment_id,
                            "result": "created" if current is None else "configured",
                            "version": accepted["version"]})
        _emit(as_json, results, "\n".join(
            f"segment/{r['id']} {r['result']} (v{r['version']})" for r in results))

    @_api_command(cli, "list")
    def list_(client: ApiClient, as_json: bool) -> None:
        """List segments with their exact member counts."""
        payload = client.get("/segments")
        rows = payload["segments"]
        for row in rows:
            row["members"] = row["member_count"]
        human = table(rows, ["id", "status", "version", "members", "kind", "formula"])
        if not payload["complete"]:
            human += "\n(partial: other workers hold some partitions)"
        _emit(as_json, payload, human)

    @_api_command(cli)
    @click.argument("segment_id")
    def show(client: ApiClient, as_json: bool, segment_id: str) -> None:
        """Status, version, formula, member count and go-live progress."""
        s = client.get(f"/segments/{segment_id}")
        g = s["go_live"]
        progress = (f"complete ({g['contacts_scanned']} contacts)" if g["complete"] else
                    f"{g['partitions_complete']}/{g['partitions']} partitions, "
                    f"{g['contacts_scanned']} contacts scanned")
        human = "\n".join([
            f"id:        {s['id']}", f"name:      {s['name']}", f"kind:      {s['kind']}",
            f"status:    {s['status']}",
            f"version:   {s['version']} (applied: {s['applied_version']})",
            f"formula:   {s['formula'] or '-'}", f"members:   {s['member_count']}",
            f"go-live:   {progress}"])
        _emit(as_json, s, human)

    @_api_command(cli)
    @click.argument("segment_id")
    @click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
    @click.option("--all", "every", is_flag=True, help="Follow the cursor to the end.")
    def members(client: ApiClient, as_json: bool, segment_id: str, limit: int,
                every: bool) -> None:
        """Members of a segment (one page, or --all)."""
        found = list(_pages(client, segment_id, limit, every))
        _emit(as_json, {"segment_id": segment_id, "members": found}, "\n".join(found))

    @_api_command(cli)
    @click.argument("contact_id")
    @click.argument("segment_id")
    def explain(client: ApiClient, as_json: bool, contact_id: str, segment_id: str) -> None:
        """Why a contact is (or is not) in a segment: a readable trace."""
        result = client.get(f"/contacts/{contact_id}/explain/{segment_id}")
        _emit(as_json, result, result["text"])

    @_api_command(cli)
    @click.option("-f", "--filename", "path", default=None, help="Draft segment (YAML/JSON).")
    @click.option("--formula", default=None, help="Draft formula text.")
    @click.option("--sample", type=click.IntRange(0, 1000), default=10, show_default=True)
    def preview(client: ApiClient, as_json: bool, path: str | None, formula: str | None,
                sample: int) -> None:
        """Exact size and a sample of a draft over current contacts (nothing goes live)."""
        if (path is None) == (formula is None):
            raise click.UsageError("give exactly one of -f FILE or --formula TEXT")
        query = {"sample": sample}
        if formula is not None:
            result = client.request("POST", "/preview", text=formula, query=query)
        else:
            docs = load_documents(path)  # type: ignore[arg-type]
            if len(docs) != 1:
                raise click.UsageError(f"{path}: preview takes one segment, found {len(docs)}")
            result = client.request("POST", "/preview", body=docs[0], query=query)
        human = (f"size: {result['size']} of {result['contacts_scanned']} contacts\n"
                 f"sample: {', '.join(result['sample']) or '-'}")
        _emit(as_json, result, human)

    def _status_command(name: str, status: str) -> None:
        def command(client: ApiClient, as_json: bool, segment_id: str) -> None:
            accepted = client.request("POST", f"/segments/{segment_id}/{name}")
            _emit(as_json, accepted, f"segment/{segment_id} {status} (v{accepted['version']})")

        command.__doc__ = f"Set a segment's status to {status} (a new version)."
        _api_command(cli, name)(click.argument("segment_id")(command))

    _status_command("activate", "live")
    _status_command("stop", "stopped")

    @_api_command(cli)
    @click.argument("segment_id")
    def delete(client: ApiClient, as_json: bool, segment_id: str) -> None:
        """Delete a segment: every member leaves."""
        accepted = client.request("DELETE", f"/segments/{segment_id}")
        _emit(as_json, accepted, f"segment/{segment_id} deleted")
