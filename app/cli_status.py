"""CLI: ``segmentflow status [--wait-caught-up]`` and ``segmentflow clock
advance --to T`` (docs/clock.md).

``status`` asks a worker's API for every partition's clock, lag and input
offsets. ``status --wait-caught-up`` waits until every input produced
before the command started is applied and its changes are on the output
topics: first the consumer groups' committed offsets on the broker
(app/caught_up.py; with no worker running it says which stage is behind),
then, through the API, until no go-live backfill runs and the batches
evaluated by then are acknowledged (a definition's go-live changes are
published after its input is committed). Exit 0 then, 4 after
``--timeout`` seconds, 3 when Kafka or the API cannot be reached.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import click

from app.api_client import ApiClient, ApiClientError
from app.cli_api import api_command, emit, table
from app.cli_kafka import run_kafka
from app.settings import Settings

__all__ = ["EXIT_NOT_CAUGHT_UP", "register_status_commands"]

EXIT_NOT_CAUGHT_UP = 4


def _human_status(status: dict[str, Any]) -> str:
    ingest, evaluator = status["ingest"], status["evaluator"]
    head = (f"clock: {status['clock']}   caught up: {'yes' if status['caught_up'] else 'no'} "
            f"(ingest {ingest['behind']} behind, evaluator {evaluator['behind']} behind)")
    rows = [{"partition": p, "event_clock": s["event_clock"] or "-", "now": s["now"],
             "lag_s": "-" if s["clock_lag_seconds"] is None else f"{s['clock_lag_seconds']:.1f}",
             "applied": s["applied_offset"], "committed": s["committed_offset"],
             "end": s["end_offset"], "input_lag": s["input_lag"],
             "backfills": s["backfills_running"]}
            for p, s in status["partitions"].items()]
    lines = [head, table(rows, ["partition", "event_clock", "now", "lag_s", "applied",
                                "committed", "end", "input_lag", "backfills"])]
    standbys = status.get("standbys") or {}
    if standbys:  # standby replicas on: each copy's lag in changelog records
        lines.append("standby copies (lag in records): " + ", ".join(
            f"{p}: {'/'.join(str(lag) for lag in lags)}" for p, lags in standbys.items()))
    if not status["complete"]:
        lines.append(f"(partitions answered: {status['partitions_answered']} of "
                     f"{status['partitions_total']})")
    return "\n".join(lines)


async def _wait_committed(settings: Settings, timeout: float) -> str | None:
    """None once the groups committed past every input produced before this
    call; else why not (after ``timeout`` seconds)."""
    from app.caught_up import CaughtUp, NotCaughtUp

    async with CaughtUp(settings) as probe:
        try:
            await probe.wait(timeout)
        except NotCaughtUp as exc:
            return str(exc)
    return None


def _wait_go_live(client: ApiClient, deadline: float, timeout: float) -> str | None:
    """None once no partition runs a go-live backfill and each has settled
    every batch it had staged when none ran; else why not, at the deadline."""
    marks: dict[str, int] = {}  # partition -> batches staged once no backfill ran
    while True:
        status = client.get("/status")
        pending: list[str] = []
        for p, s in status["partitions"].items():
            if s["backfills_running"] is None:
                continue  # not reported (a worker of an older version)
            if s["backfills_running"]:
                marks.pop(p, None)
                pending.append(f"partition {p}: {s['backfills_running']} go-live backfill(s) "
                               "running")
                continue
            mark = marks.setdefault(p, s["batches_staged"])
            if s["batches_staged"] < mark:  # reopened here meanwhile: restored
                mark = marks[p] = s["batches_staged"]
            if s["batches_settled"] < mark:
                pending.append(f"partition {p}: changes not yet acknowledged")
        if not status["complete"]:
            pending.append(f"partitions answered: {status['partitions_answered']} of "
                           f"{status['partitions_total']}")
        if not pending:
            return None
        if time.monotonic() >= deadline:
            return f"not caught up after {timeout:g} s: " + "; ".join(pending)
        time.sleep(0.1)  # the API is asked again: nothing notifies a change


def register_status_commands(cli: click.Group) -> None:

    @cli.command("status")
    @click.option("--wait-caught-up", is_flag=True,
                  help="Wait until every input produced before now is applied and its "
                       "changes are on the output topics (the consumer groups' offsets in "
                       "Kafka: KAFKA_BOOTSTRAP_SERVERS, SEGMENTFLOW_TOPIC_PREFIX; then go-live "
                       f"backfills, through the API). Exit 0 then, {EXIT_NOT_CAUGHT_UP} after "
                       "--timeout.")
    @click.option("--timeout", type=click.FloatRange(0), default=60.0, show_default=True,
                  help="Seconds --wait-caught-up waits.")
    @click.option("--url", envvar="SEGMENTFLOW_API_URL", default="http://127.0.0.1:6066",
                  show_default=True, help="Worker API (env SEGMENTFLOW_API_URL).")
    @click.option("--token", envvar="SEGMENTFLOW_API_TOKEN", default=None,
                  help="Bearer token (env SEGMENTFLOW_API_TOKEN).")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
    def status(wait_caught_up: bool, timeout: float, url: str, token: str | None,
               as_json: bool) -> None:
        """Every partition's clock, lag and input offsets, and whether the
        service is caught up; or, with --wait-caught-up, wait for it."""
        if wait_caught_up:
            settings = Settings()
            started, at = time.monotonic(), datetime.now(UTC)
            why = run_kafka(settings, _wait_committed(settings, timeout))
            if why is None:
                try:
                    why = _wait_go_live(ApiClient(url, token), started + timeout, timeout)
                except ApiClientError as exc:
                    click.echo(f"error: go-live backfills not checked: {exc}", err=True)
                    sys.exit(3 if exc.status == 0 else 1)
            done = why is None
            message = why or (
                f"caught up: every input produced before {at.isoformat(timespec='seconds')} "
                f"is applied and its changes are on the output topics "
                f"({time.monotonic() - started:.1f} s)")
            if as_json:
                click.echo(json.dumps({"caught_up": done, "message": message}))
            if not done:
                click.echo(f"error: {message}", err=True)
                sys.exit(EXIT_NOT_CAUGHT_UP)
            if not as_json:
                click.echo(message)
            return
        _show_status(url, token, as_json)

    def _show_status(url: str, token: str | None, as_json: bool) -> None:
        try:
            result = ApiClient(url, token).get("/status")
        except ApiClientError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(3 if exc.status == 0 else 1)
        emit(as_json, result, _human_status(result))

    @cli.group()
    def clock() -> None:
        """The event clock (SEGMENTFLOW_CLOCK=event): docs/clock.md."""

    @api_command(clock, "advance")
    @click.option("--to", "to", required=True,
                  help="ISO 8601 time with a UTC offset, e.g. 2011-01-01T00:00:00Z.")
    @click.option("--timeout", type=click.IntRange(1, 600), default=30, show_default=True,
                  help="Seconds the worker waits for ingest to forward earlier inputs.")
    def advance(client: ApiClient, as_json: bool, to: str, timeout: int) -> None:
        """Move every partition's event clock forward to TO (never back), after
        every input produced before the command: due contacts leave or join
        as if time had passed. For replays that end in silence."""
        client.timeout = timeout + 30
        result = client.request("POST", "/clock/advance", body={"to": to},
                                query={"timeout": timeout})
        emit(as_json, result, f"event clock advanced to {result['to']} on "
                              f"{result['partitions']} partitions")
