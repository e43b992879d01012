"""``GET /fields``: the field catalogue — contact and account attributes and
event properties seen on inputs so far, with JSON types and counts
(runtime/fields.py), from every worker's partitions."""

from __future__ import annotations

from faust.web import Request, Response, View

from app.api.context import ApiContext, coverage, is_local
from app.api.errors import json_response
from app.api.guard import authorize
from runtime.fields import merge_catalogues

__all__ = ["register_fields"]


def register_fields(ctx: ApiContext) -> None:
    settings, reads, cluster = ctx.settings, ctx.reads, ctx.cluster

    @ctx.app.page("/fields", name="fields")
    class Fields(View):
        async def get(self, request: Request) -> Response:
            authorize(request, settings, write=False)
            parts = [reads.field_catalogue()]
            others: set[int] = set()
            if not is_local(request):
                for peer in await cluster.gather(request, "GET", "/fields"):
                    parts.append(peer)
                    others |= set(peer["partitions_answered"])
            return json_response({**merge_catalogues(parts), **coverage(ctx, others)})
