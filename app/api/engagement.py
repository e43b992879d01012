"""``GET /segments/{id}/engagement?days=N``: what the segment's current
members did — their interactions per UTC day and event type over the last N
days (opens, clicks, form submits, visits…), in total and per member, from
the retained interaction history (docs/history.md). Every worker's
partitions, like the other reads."""

from __future__ import annotations

import time
from typing import Any

from faust.web import Request, Response, View

from app.api.context import ApiContext, coverage, is_local
from app.api.errors import ApiError, json_response
from app.api.guard import authorize, check_id, int_param

__all__ = ["MAX_DAYS", "engagement_answer", "register_engagement"]

MAX_DAYS = 90


def engagement_answer(segment_id: str, days: int, members: int,
                      counts: dict[tuple[str, str], int]) -> dict[str, Any]:
    """The answer: one row per day that had interactions, by type."""
    by_day: dict[str, dict[str, int]] = {}
    for (day, event_type), n in counts.items():
        by_day.setdefault(day, {})[event_type] = n
    types = sorted({event_type for _, event_type in counts})
    return {
        "segment_id": segment_id, "days": days, "members": members, "types": types,
        "series": [{"day": day, "interactions": by_day[day],
                    "per_member": {t: round(n / members, 4) for t, n in by_day[day].items()}
                    if members else {}}
                   for day in sorted(by_day)],
    }


def register_engagement(ctx: ApiContext) -> None:
    settings, reads, cluster = ctx.settings, ctx.reads, ctx.cluster

    @ctx.app.page("/segments/{segment_id}/engagement", name="segment-engagement")
    class Engagement(View):
        async def get(self, request: Request, segment_id: str) -> Response:
            authorize(request, settings, write=False)
            check_id(segment_id)
            days = int_param(request, "days", 30, 1, MAX_DAYS)
            deadline = time.monotonic() + settings.api_preview_timeout
            async with ctx.work.slot():
                try:
                    result = await reads.engagement(segment_id, days, deadline)
                except TimeoutError:
                    raise ApiError(503, "timeout",
                                   f"engagement took longer than "
                                   f"{settings.api_preview_timeout} s; fewer days, or retry "
                                   "later", headers={"Retry-After": "5"}) from None
            members, counts = result.members, dict(result.counts)
            others: set[int] = set()
            if not is_local(request):
                for peer in await cluster.gather(request, "GET", request.path,
                                                 {"days": days}):
                    members += peer["members"]
                    for row in peer["series"]:
                        for event_type, n in row["interactions"].items():
                            slot = (row["day"], event_type)
                            counts[slot] = counts.get(slot, 0) + n
                    others |= set(peer["partitions_answered"])
            return json_response({**engagement_answer(segment_id, days, members, counts),
                                  **coverage(ctx, others)})
