"""``segmentflow backtest``: a draft's (or a segment's) size per day in the
past, from the retained interaction history, as a small text chart."""

from __future__ import annotations

from typing import Any

import click

from app.api_client import ApiClient
from app.cli_api import api_command, emit, load_documents

__all__ = ["chart", "register_backtest_command"]

_WIDTH = 40


def chart(series: list[dict[str, Any]]) -> str:
    """One line per point: day, a bar scaled to the largest size, the size."""
    top = max((p["size"] for p in series), default=0)
    lines = []
    for point in series:
        bar = "█" * (round(point["size"] / top * _WIDTH) if top else 0)
        lines.append(f"{point['at'][:10]}  {bar:<{_WIDTH}}  {point['size']:,}")
    return "\n".join(lines)


def register_backtest_command(cli: click.Group) -> None:
    @api_command(cli, "backtest")
    @click.option("-f", "--filename", "path", default=None, help="Draft segment (YAML/JSON).")
    @click.option("--formula", default=None, help="Draft formula text.")
    @click.option("--segment", "segment_id", default=None,
                  help="A segment's definition in force.")
    @click.option("--from", "first", default=None, help="First day (ISO date).")
    @click.option("--to", "last", default=None, help="Last day (default: today).")
    @click.option("--at", default=None, help="One instant instead of days (ISO, with offset).")
    @click.option("--sample", type=click.IntRange(0, 1000), default=10, show_default=True)
    def backtest(client: ApiClient, as_json: bool, path: str | None, formula: str | None,
                 segment_id: str | None, first: str | None, last: str | None,
                 at: str | None, sample: int) -> None:
        """Size per day over [--from, --to] (or members at --at) from the
        retained interaction history; nothing goes live."""
        if sum(x is not None for x in (path, formula, segment_id)) != 1:
            raise click.UsageError("give exactly one of -f FILE, --formula TEXT or --segment ID")
        if (at is None) == (first is None):
            raise click.UsageError("give --from DAY (with --to, default today) or --at TIME")
        query = {"from": first, "to": last, "at": at, "sample": sample}
        if formula is not None:
            result = client.request("POST", "/backtest", text=formula, query=query)
        else:
            if segment_id is not None:
                current = client.get(f"/segments/{segment_id}")["definition"]
                body = {k: current[k] for k in ("id", "name", "kind", "formula", "include",
                                                "exclude", "timezone") if k in current}
            else:
                docs = load_documents(path)  # type: ignore[arg-type]
                if len(docs) != 1:
                    raise click.UsageError(f"{path}: backtest takes one segment, "
                                           f"found {len(docs)}")
                body = docs[0]
            result = client.request("POST", "/backtest", body=body, query=query)
        human = (f"{chart(result['series'])}\n"
                 f"members at {result['series'][-1]['at']}: "
                 f"{', '.join(result['sample']) or '-'}\n"
                 f"note: {result['note']}")
        emit(as_json, result, human)
