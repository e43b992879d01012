"""CLI commands that talk to a worker's HTTP API: list, show, members,
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

__all__ = [
    "api_command", "emit", "load_documents", "read_segment_items", "register_api_commands",
    "table",
]

DEFAULT_URL = "http://127.0.0.1:6066"


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain left-aligned table with an upper-case header."""
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
              for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def refused_line(s: dict[str, Any]) -> str | None:
    """A segment's refused definition, if any, with what stays in force."""
    if s.get("refused_version") is None:
        return None
    kept = f"v{s['version']} stays in force" if s["version"] else "nothing in force"
    return f"v{s['refused_version']} refused: {s['refused_reason']} ({kept})"


def read_segment_items(path: str) -> list[Any]:
    """Every item of a YAML or JSON file (``-``: stdin): one document,
    several YAML documents, a list, or ``{"segments": [...]}``."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    try:
        docs = [d for d in load_yaml(text, all_documents=True) if d is not None]
    except (yaml.YAMLError, StructureError) as exc:
        raise click.ClickException(f"{path}: not valid YAML or JSON: {exc}") from exc
    found: list[Any] = []
    for doc in docs:
        if isinstance(doc, dict) and isinstance(doc.get("segments"), list):
            doc = doc["segments"]
        found.extend(doc if isinstance(doc, list) else [doc])
    if not found:
        raise click.ClickException(f"{path}: no segment definitions found")
    return found


def load_documents(path: str) -> list[dict[str, Any]]:
    """Segment definitions from a file (``read_segment_items``), each with an id."""
    found = read_segment_items(path)
    for item in found:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise click.ClickException(f"{path}: every segment needs an 'id' (got {item!r})")
    return found


def api_command(group: click.Group, name: str | None = None) -> Callable[..., Any]:
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


def emit(as_json: bool, payload: Any, human: str) -> None:
    click.echo(json.dumps(payload, indent=2, ensure_ascii=False) if as_json else human)


def _pages(client: ApiClient, segment_id: str, limit: int, cursor: str | None, every: bool
           ) -> Iterator[tuple[list[str], str | None]]:
    """(members, next cursor) per page: one page, or every page with ``every``."""
    while True:
        page = client.get(f"/segments/{segment_id}/members", limit=limit, cursor=cursor)
        cursor = page["next_cursor"]
        yield page["members"], cursor
        if not every or cursor is None:
            return


def register_api_commands(cli: click.Group) -> None:
    @api_command(cli, "list")
    def list_(client: ApiClient, as_json: bool) -> None:
        """List segments with their exact member counts (and refused definitions)."""
        payload = client.get("/segments")
        rows = payload["segments"]
        for row in rows:
            row["members"] = row["member_count"]
        human = table(rows, ["id", "status", "version", "members", "kind", "formula"])
        human += "".join(f"\nsegment/{row['id']} {line}" for row in rows
                         if (line := refused_line(row)) is not None)
        if not payload["complete"]:
            human += "\n(partial: other workers hold some partitions)"
        emit(as_json, payload, human)

    @api_command(cli)
    @click.argument("segment_id")
    def show(client: ApiClient, as_json: bool, segment_id: str) -> None:
        """Status, version, formula, member count and go-live progress; a
        refused definition with its reason (the version in force is shown)."""
        s = client.get(f"/segments/{segment_id}")
        g = s["go_live"]
        progress = (f"complete ({g['contacts_scanned']} contacts)" if g["complete"] else
                    f"{g['partitions_complete']}/{g['partitions']} partitions, "
                    f"{g['contacts_scanned']} contacts scanned")
        refused = refused_line(s)
        human = "\n".join([
            f"id:        {s['id']}", f"name:      {s['name'] or '-'}",
            f"kind:      {s['kind'] or '-'}", f"status:    {s['status']}",
            f"version:   {s['version']} (applied: {s['applied_version']})",
            *([f"refused:   {refused}"] if refused else []),
            f"formula:   {s['formula'] or '-'}", f"members:   {s['member_count']}",
            f"go-live:   {progress}"])
        emit(as_json, s, human)

    @api_command(cli)
    @click.argument("segment_id")
    @click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
    @click.option("--cursor", default=None, help="Start after this cursor (from a previous page).")
    @click.option("--all", "every", is_flag=True, help="Follow the cursor to the end.")
    @click.option("--format", "fmt", type=click.Choice(["text", "csv"]), default="text",
                  show_default=True, help="csv: a contact_id header, then one id per line.")
    def members(client: ApiClient, as_json: bool, segment_id: str, limit: int,
                cursor: str | None, every: bool, fmt: str) -> None:
        """Members of a segment (one page, or --all), with the total and the
        cursor of the next page (on stderr, so stdout stays a list)."""
        if as_json and fmt != "text":
            raise click.UsageError("--json and --format csv exclude each other")
        total = client.get(f"/segments/{segment_id}")["member_count"]
        found: list[str] = []
        following: str | None = None
        if fmt == "csv":
            click.echo("contact_id")
        for page, after in _pages(client, segment_id, limit, cursor, every):
            found.extend(page)
            following = after
            if not as_json and page:
                click.echo("\n".join(page))
        if as_json:
            emit(True, {"segment_id": segment_id, "members": found, "next_cursor": following,
                         "total": total}, "")
            return
        hint = f"; next: --cursor {following}" if following else ""
        click.echo(f"showing {len(found)} of {total}{hint}", err=True)

    @api_command(cli)
    @click.argument("contact_id")
    @click.argument("segment_id")
    def explain(client: ApiClient, as_json: bool, contact_id: str, segment_id: str) -> None:
        """Why a contact is (or is not) in a segment: a readable trace."""
        result = client.get(f"/contacts/{contact_id}/explain/{segment_id}")
        clock = (f"\nclock: {result['clock']}, now {result['now']}" if "clock" in result
                 else "")
        emit(as_json, result, result["text"] + clock)

    @api_command(cli)
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
                 f"sample: {', '.join(result['sample']) or '-'}"
                 + "".join(f"\nwarning: {w}" for w in result.get("warnings", [])))
        emit(as_json, result, human)

    @api_command(cli)
    def fields(client: ApiClient, as_json: bool) -> None:
        """Contact and account attributes and event properties seen so far,
        with their JSON types and how many inputs carried them."""
        result = client.get("/fields")
        rows = [("SCOPE", "FIELD", "TYPES", "INPUTS")]
        for scope in sorted(result["fields"]):
            paths = result["fields"][scope] or {"-": {}}
            for path in sorted(paths):
                types = paths[path]
                rows.append((scope, path, ",".join(sorted(types)) or "-",
                             f"{sum(types.values()):,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        human = "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}"
                          for a, b, c, d in rows)
        if result.get("truncated"):
            human += "\n(truncated: more fields were seen than are listed)"
        if not result.get("complete", True):
            human += "\n(partial: some partitions did not answer)"
        emit(as_json, result, human)

    def _status_command(name: str, status: str) -> None:
        def command(client: ApiClient, as_json: bool, segment_id: str) -> None:
            accepted = client.request("POST", f"/segments/{segment_id}/{name}")
            emit(as_json, accepted, f"segment/{segment_id} {status} (v{accepted['version']})")

        command.__doc__ = f"Set a segment's status to {status} (a new version)."
        api_command(cli, name)(click.argument("segment_id")(command))

    _status_command("activate", "live")
    _status_command("stop", "stopped")

    @api_command(cli)
    @click.argument("segment_id")
    def delete(client: ApiClient, as_json: bool, segment_id: str) -> None:
        """Delete a segment: every member leaves."""
        accepted = client.request("DELETE", f"/segments/{segment_id}")
        emit(as_json, accepted, f"segment/{segment_id} deleted")
