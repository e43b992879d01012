"""The clock and progress of every partition (``GET /status``) and the
clock advance (``POST /clock/advance``); docs/clock.md.

``/status`` answers per partition (this worker's, and its peers' unless
``local=1``): clock mode, event clock, the ``now`` evaluations use, how far
the event clock trails the wall clock, and the input log (offset applied,
offset committed, end offset, inputs not yet applied), go-live backfills
running and batches whose outputs are not acknowledged yet; and
``caught_up``: every input produced before the request has been applied
and its changes are on the output topics — the consumer groups' committed
offsets on the broker have reached the topics' ends (app/caught_up.py),
and every partition answered with no backfill running and nothing in
flight (a definition's go-live changes are published after its input is
committed).

``/clock/advance`` writes a ``clock`` command (``{"to": time}``) to every
partition of the evaluator's log, once ingest has forwarded every input
produced before the request: the command is ordered after them. Each
partition's event clock moves forward to ``to`` (never back), and the
contacts due by then are woken: a replay that ends in silence lets its
windows expire.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import KafkaError
from faust.web import Request, Response, View

from agents.codec import encode_envelope
from app.api.context import ApiContext, coverage, is_local
from app.api.errors import ApiError, json_response
from app.api.guard import authorize, int_param, read_body
from app.api.limits import clip
from app.caught_up import CaughtUp, NotCaughtUp
from app.faust_app import Topics

__all__ = ["CLOCK_KEY", "parse_clock_time", "register_status"]

#: Key of the clock commands on the evaluator's log (no contact has it: ids
#: start with a letter or digit).
CLOCK_KEY = b"__clock__"


def parse_clock_time(value: Any) -> datetime:
    """An ISO 8601 time with a UTC offset (``Z`` or ``+hh:mm``), as UTC."""
    if not isinstance(value, str):
        raise ApiError(422, "invalid", "'to' must be an ISO 8601 time with a UTC offset, "
                       "e.g. 2011-01-01T00:00:00Z",
                       [{"loc": "to", "message": "must be a string", "type": "type_error"}])
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise ApiError(422, "invalid", f"'to' {clip(value)!r} is not an ISO 8601 time with a "
                       "UTC offset (e.g. 2011-01-01T00:00:00Z or 2011-01-01T01:00:00+01:00)",
                       [{"loc": "to", "message": "not a time with a UTC offset",
                         "type": "invalid_time"}])
    return at.astimezone(UTC)


class _Progress:
    """One long-lived CaughtUp per worker, started at first use."""

    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx
        self._probe: CaughtUp | None = None
        self._lock = asyncio.Lock()

    async def probe(self) -> CaughtUp:
        async with self._lock:
            if self._probe is None:
                probe = CaughtUp(self._ctx.settings)
                try:
                    await probe.start()
                except Exception as exc:
                    raise ApiError(503, "broker_unreachable",
                                   f"cannot read offsets from Kafka: {exc}") from exc
                self._probe = probe
            return self._probe

    async def close(self) -> None:
        if self._probe is not None:
            await self._probe.close()
            self._probe = None


def register_status(ctx: ApiContext, topics: Topics) -> None:
    app, settings, reads, cluster = ctx.app, ctx.settings, ctx.reads, ctx.cluster
    progress = _Progress(ctx)
    log_topic = settings.topics.evaluator_input

    @app.on_before_shutdown.connect
    async def _close_progress(*_: Any, **__: Any) -> None:
        await progress.close()

    @app.page("/status", name="status")
    class Status(View):
        async def get(self, request: Request) -> Response:
            authorize(request, settings, write=False)
            probe = await progress.probe()
            try:
                snapshot = await probe.snapshot()
                ends = {tp.partition: end for tp, end in
                        (await probe.end_offsets((log_topic,))).items()}
            except KafkaError as exc:
                raise ApiError(503, "broker_unreachable",
                               f"cannot read offsets from Kafka: {exc}; retry",
                               headers={"Retry-After": "5"}) from exc
            partitions = reads.partition_status(ends)
            standbys = {p: [lag] for p, lag in reads.standby_lag().items()}
            others: set[int] = set()
            if not is_local(request):
                for answer in await cluster.gather(request, "GET", "/status"):
                    for partition, value in answer["partitions"].items():
                        partitions.setdefault(int(partition), value)
                    for partition, lags in answer.get("standbys", {}).items():
                        standbys.setdefault(int(partition), []).extend(lags)
                    others |= set(answer["partitions_answered"])
            values = partitions.values()
            backfills = sum(s["backfills_running"] or 0 for s in values)
            settled = all(not s["backfills_running"]
                          and s["batches_settled"] == s["batches_staged"] for s in values)
            cover = coverage(ctx, others)
            return json_response({
                "clock": settings.clock,
                "caught_up": snapshot["caught_up"] and settled and cover["complete"],
                "backfills_running": backfills,
                "ingest": snapshot["ingest"],
                "evaluator": snapshot["evaluator"],
                "partitions": {str(p): v for p, v in sorted(partitions.items())},
                "standbys": {str(p): sorted(v) for p, v in sorted(standbys.items())},
                **cover,
            })

    @app.page("/clock/advance", name="clock-advance")
    class ClockAdvance(View):
        async def post(self, request: Request) -> Response:
            authorize(request, settings, write=True)
            timeout = int_param(request, "timeout", 30, 1, 600)
            async with ctx.work.slot() as slot:
                kind, body = await read_body(request, settings, ctx.work, slot)
            to = parse_clock_time(body if kind == "text" else
                                  body.get("to") if isinstance(body, dict) else None)
            if settings.clock != "event":
                raise ApiError(409, "wall_clock",
                               "this worker runs on the wall clock (SEGMENTFLOW_CLOCK=wall): "
                               "only the event clock (SEGMENTFLOW_CLOCK=event) can be advanced")
            probe = await progress.probe()
            try:  # ordered after every input produced before this request
                await probe.wait_ingested(timeout)
            except KafkaError as exc:
                raise ApiError(503, "broker_unreachable",
                               f"nothing sent: cannot read offsets from Kafka: {exc}; retry",
                               headers={"Retry-After": "5"}) from exc
            except NotCaughtUp as exc:
                raise ApiError(503, "ingest_behind",
                               f"nothing sent: ingest has not forwarded every earlier input "
                               f"within {timeout} s ({exc.behind.describe()}); retry, or "
                               "raise ?timeout= (--timeout)") from exc
            value = encode_envelope("clock", {"to": to.isoformat()})
            sent = [await topics.evaluator_input.send(key=CLOCK_KEY, value=value, partition=p)
                    for p in range(settings.partitions)]
            for future in sent:
                await future  # a 202 means every partition has the command
            return json_response({"to": to.isoformat(), "partitions": settings.partitions,
                                  "clock": settings.clock}, 202)
