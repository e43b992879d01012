"""``POST /backtest``: a draft (or a live segment's definition) evaluated in
the past over the retained interaction history: its size at the end of each
day of ``[from, to]`` (or at one instant ``at``) and a sample of its members
at the last point. Nothing goes live; nothing is written.

Behavioural conditions see the interactions as they were at each point;
attributes, account, consent and the memberships of referenced segments
are today's (their history is not kept): the answer says so.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any

from aiohttp.web import Response
from faust.web import Request, View

from app.api.context import ApiContext, coverage, is_local
from app.api.drafts import read_draft
from app.api.errors import ApiError, json_response
from app.api.guard import authorize, int_param
from engine import CompileError, CycleError

__all__ = ["MAX_POINTS", "backtest_points", "register_backtest"]

MAX_POINTS = 400  # days in one backtest (a bit more than the default retention)
NOTE = ("interactions as they were at each point; attributes, account, consent and "
        "referenced segments as they are now (their history is not kept)")


def _instant(name: str, raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "bad_parameter",
                       f"{name}: not a date or time (ISO 8601, e.g. 2026-03-01 or "
                       f"2026-03-01T12:00:00Z): {raw[:40]!r}") from None
    if value.tzinfo is None:
        if len(raw) > 10:
            raise ApiError(400, "bad_parameter", f"{name}: a time needs a UTC offset ('Z')")
        value = value.replace(tzinfo=UTC)
    return value


def backtest_points(query: Any, now: datetime, retention_days: int) -> list[datetime]:
    """The instants to evaluate: ``at``, or the end of each day from ``from``
    to ``to`` (UTC; ``to`` defaults to today), all inside the retention."""
    horizon = now - timedelta(days=retention_days)
    if "at" in query:
        points = [_instant("at", query["at"])]
    elif "from" in query:
        first = _instant("from", query["from"]).date()
        last = _instant("to", query["to"]).date() if "to" in query else now.date()
        if last < first:
            raise ApiError(400, "bad_parameter", "to: before from")
        _check_retained(_day_end(first), horizon, retention_days)
        days = (last - first).days + 1
        if days > MAX_POINTS:
            raise ApiError(400, "bad_parameter",
                           f"{days} days: a backtest covers at most {MAX_POINTS}")
        points = [min(_day_end(first + timedelta(days=n)), now) for n in range(days)]
    else:
        raise ApiError(400, "bad_parameter", "give 'at' (an instant) or 'from' (a date, "
                       "with 'to', default today)")
    _check_retained(points[0], horizon, retention_days)
    if points[-1] > now:
        raise ApiError(422, "in_the_future", f"{points[-1].isoformat()} is after now "
                       f"({now.isoformat()})")
    return points


def _check_retained(first: datetime, horizon: datetime, retention_days: int) -> None:
    if first < horizon:
        raise ApiError(422, "outside_retention",
                       f"{first.isoformat()} is before the retained history "
                       f"(since {horizon.isoformat()}: SEGMENTFLOW_HISTORY_RETENTION_DAYS="
                       f"{retention_days})")


def _day_end(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), dtime(), UTC) - timedelta(microseconds=1)


def register_backtest(ctx: ApiContext) -> None:
    app, settings, reads, cluster = ctx.app, ctx.settings, ctx.reads, ctx.cluster

    @app.page("/backtest", name="backtest")
    class Backtest(View):
        """A draft's size per day in the past, from the retained history."""

        async def post(self, request: Request) -> Response:
            authorize(request, settings, write=False)
            sample = int_param(request, "sample", 10, 0, 1000)
            async with ctx.work.slot() as slot:
                draft = await self.draft(request, slot)
                now = max((reads.now(p) for p in reads.held_partitions()),
                          default=datetime.now(UTC))
                points = backtest_points(request.query, now, settings.history_retention_days)
                deadline = time.monotonic() + settings.api_preview_timeout
                try:
                    result = await reads.backtest(draft, points, sample, deadline)
                except CycleError as exc:
                    raise ApiError(409, "reference_cycle", f"draft refused: {exc}") from exc
                except (CompileError, ValueError) as exc:
                    raise ApiError(422, "invalid", f"draft refused: {exc}") from exc
                except TimeoutError:
                    raise ApiError(503, "timeout",
                                   f"the backtest took longer than "
                                   f"{settings.api_preview_timeout} s "
                                   "(SEGMENTFLOW_API_PREVIEW_TIMEOUT): fewer days, or retry "
                                   "later", headers={"Retry-After": "5"}) from None
            sizes, scanned, found = result.sizes, result.scanned, result.sample
            others: set[int] = set()
            if not is_local(request):
                for peer in await cluster.gather(request, "POST", "/backtest",
                                                 dict(request.query), await request.read()):
                    sizes = [a + b["size"] for a, b in zip(sizes, peer["series"], strict=True)]
                    scanned += peer["contacts_scanned"]
                    found = found + peer["sample"][:max(0, sample - len(found))]
                    others |= set(peer["partitions_answered"])
            return json_response({
                "formula": draft.formula, "contacts_scanned": scanned,
                "series": [{"at": at.isoformat(), "size": size}
                           for at, size in zip(points, sizes, strict=True)],
                "sample": found, "note": NOTE, **coverage(ctx, others)})

        async def draft(self, request: Request, slot: Any) -> Any:
            return await read_draft(ctx, request, slot, "backtest")
