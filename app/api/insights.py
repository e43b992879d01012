"""Insights routes (issue #15): a segment's series (joins, leaves, causes
and size per hour or day) from the worker's insights store
(``app.insights``), and the overlap of segments (shared members) from a
scan of the current memberships.

- ``GET /segments/{id}/insights?from=&to=&step=hour|day``: every worker
  folds the whole membership-changes topic, so any worker answers alone;
- ``GET /segments/{id}/overlap?with=b,c``: a scan of the contacts, this
  worker's partitions plus its peers' (``local=1`` calls), like the counts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from faust.web import Request, Response, View

from app.api.context import ApiContext, coverage, is_local
from app.api.errors import ApiError, json_response
from app.api.guard import authorize, check_id
from app.api.limits import clip
from app.insights.fold import InsightsFold
from app.insights.series import cause_totals, hour_of, hour_start, points
from engine import ContactState

__all__ = ["MAX_OVERLAP", "MAX_POINTS", "register_insights"]

MAX_POINTS = 5000  # buckets per answer (5000 hours: more than the 90 days kept)
MAX_OVERLAP = 8  # segments compared with one (a 9 x 9 matrix)
_DEFAULT_SPAN = {"hour": timedelta(hours=47), "day": timedelta(days=29)}


def _moment(request: Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter",
                       f"query parameter {name!r} must be an ISO 8601 date or time, "
                       f"not {clip(raw)!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # UTC unless said otherwise
    if not datetime(1971, 1, 1, tzinfo=UTC) <= moment <= datetime(9000, 1, 1, tzinfo=UTC):
        raise ApiError(400, "invalid_parameter",
                       f"query parameter {name!r} is out of range (1971 to 9000)")
    return moment


def _series(ctx: ApiContext, fold: InsightsFold, request: Request,
            segment_id: str) -> dict[str, Any]:
    store = fold.store
    if store is None or not fold.started:
        raise ApiError(503, "unavailable", "the insights series is still opening; retry",
                       headers={"Retry-After": "1"})
    step = request.query.get("step", "hour")
    if step not in ("hour", "day"):
        raise ApiError(400, "invalid_parameter", "query parameter 'step' must be hour or day")
    total = store.total(segment_id)
    if total is None and ctx.writer.current(segment_id) is None:
        raise ApiError(404, "segment_not_found", f'no segment "{clip(segment_id)}"')
    start, end = _moment(request, "from"), _moment(request, "to")
    newest = store.newest_hour()
    if end is None:
        # The series' own clock: the newest hour folded (event-time replays
        # such as the demo's are years old), else now.
        end = hour_start(newest) if newest is not None else datetime.now(UTC)
        if start is not None and start > end:
            end = start
    if start is None:
        start = end - _DEFAULT_SPAN[step]
    if start > end:
        raise ApiError(400, "invalid_parameter", "'from' is after 'to'")
    first, last = hour_of(start), hour_of(end)
    count = (last // 24 - first // 24 + 1) if step == "day" else last - first + 1
    if count > MAX_POINTS:
        raise ApiError(400, "invalid_parameter",
                       f"{count} {step}s asked: at most {MAX_POINTS} points per answer")
    series = points(store.hours(segment_id, first - first % 24), total or 0, first, last,
                    step)  # type: ignore[arg-type]
    return {
        "segment_id": segment_id,
        "step": step,
        "from": series[0]["start"],
        "to": series[-1]["start"],
        "size": total or 0,
        "joins": sum(p["joins"] for p in series),
        "leaves": sum(p["leaves"] for p in series),
        "causes": cause_totals(series),
        "points": series,
        "retention_days": store.retention_hours // 24,
        "history_complete": store.history_complete(),
        "behind": fold.behind(),
    }


async def _overlap_here(ctx: ApiContext, segments: list[str]) -> list[list[int]]:
    """Members shared by each pair of ``segments`` over this worker's
    partitions (the diagonal: each one's size)."""
    n = len(segments)
    matrix = [[0] * n for _ in range(n)]
    reads = ctx.reads
    for partition in sorted(reads.held_partitions()):
        async for _, raw in reads._states(partition):
            state = ContactState.from_bytes(raw)
            inside = [i for i, s in enumerate(segments) if state.is_member(s)]
            for i in inside:
                row = matrix[i]
                for j in inside:
                    row[j] += 1
    return matrix


async def _overlap(ctx: ApiContext, request: Request, segment_id: str) -> dict[str, Any]:
    raw = request.query.get("with", "")
    others = [s.strip() for s in raw.split(",") if s.strip()]
    for other in others:
        check_id(other, "segment id in 'with'")
    segments = list(dict.fromkeys([segment_id, *others]))
    if len(segments) > MAX_OVERLAP + 1:
        raise ApiError(400, "invalid_parameter",
                       f"'with' names at most {MAX_OVERLAP} other segments")
    matrix = await _overlap_here(ctx, segments)
    answered: set[int] = set()
    if not is_local(request):
        for answer in await ctx.cluster.gather(request, "GET", f"/segments/{segment_id}/overlap",
                                               {"with": ",".join(segments[1:])}):
            answered |= set(answer["partitions_answered"])
            for i, row in enumerate(answer["matrix"]):
                for j, value in enumerate(row):
                    matrix[i][j] += value
    return {"segments": segments, "sizes": [matrix[i][i] for i in range(len(segments))],
            "matrix": matrix, **coverage(ctx, answered)}


def register_insights(ctx: ApiContext, fold: InsightsFold) -> None:
    settings = ctx.settings

    @ctx.app.page("/segments/{segment_id}/insights", name="segment-insights")
    class Insights(View):
        async def get(self, request: Request, segment_id: str) -> Response:
            authorize(request, settings, write=False)
            check_id(segment_id)
            return json_response(_series(ctx, fold, request, segment_id))

    @ctx.app.page("/segments/{segment_id}/overlap", name="segment-overlap")
    class Overlap(View):
        async def get(self, request: Request, segment_id: str) -> Response:
            authorize(request, settings, write=False)
            check_id(segment_id)
            if ctx.writer.current(segment_id) is None:
                raise ApiError(404, "segment_not_found", f'no segment "{clip(segment_id)}"')
            return json_response(await _overlap(ctx, request, segment_id))
