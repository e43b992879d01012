"""``GET /insights/recent``: every segment's joins and leaves in the last
hour and the last day, from the insights series (docs/insights.md), for the
console's segment list — one request for the whole list instead of one
series per segment.

The series is hourly, so the windows are whole UTC hours ending with the
current one: "hour" is the current hour (since HH:00), "day" the current
hour and the 23 before. "Current" is the service's clock: the newest
``now`` of the partitions held here (the event clock on an event-time
replay, else the wall clock; docs/clock.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from faust.web import Request, Response, View

from app.api.context import ApiContext
from app.api.errors import ApiError, json_response
from app.api.guard import authorize
from app.insights.fold import InsightsFold
from app.insights.series import hour_of, hour_start

__all__ = ["recent_activity", "register_recent"]

DAY_HOURS = 24


def _now(ctx: ApiContext) -> datetime:
    held = ctx.reads.held_partitions()
    return max((ctx.reads.now(p) for p in held), default=datetime.now(UTC))


def recent_activity(store: Any, segment_ids: list[str], now: datetime) -> dict[str, Any]:
    """Joins and leaves of each segment in the current hour and the last 24."""
    current = hour_of(now)
    first = current - DAY_HOURS + 1
    found = []
    for segment_id in segment_ids:
        hours = store.hours(segment_id, first)
        day = [counts for hour, counts in hours.items() if first <= hour <= current]
        this = hours.get(current)
        found.append({"segment_id": segment_id,
                      "joins_hour": this.joins if this else 0,
                      "leaves_hour": this.leaves if this else 0,
                      "joins_day": sum(c.joins for c in day),
                      "leaves_day": sum(c.leaves for c in day)})
    return {"now": now.isoformat(), "hour_from": hour_start(current).isoformat(),
            "day_from": hour_start(first).isoformat(), "segments": found}


def register_recent(ctx: ApiContext, fold: InsightsFold) -> None:
    settings = ctx.settings

    @ctx.app.page("/insights/recent", name="insights-recent")
    class Recent(View):
        async def get(self, request: Request) -> Response:
            authorize(request, settings, write=False)
            store = fold.store
            if store is None or not fold.started:
                raise ApiError(503, "unavailable", "the insights series is still opening; "
                               "retry", headers={"Retry-After": "1"})
            ids = sorted(ctx.reads.definitions().keys() | ctx.writer.pending().keys())
            return json_response({**recent_activity(store, ids, _now(ctx)),
                                  "behind": fold.behind()})
