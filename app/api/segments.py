"""Segment resources: create / update / get / list / delete, activate / stop,
status and go-live progress, members (cursor-paginated), static member
add/remove, and the condition tree as a diagram."""

from __future__ import annotations

from typing import Any

from faust.web import Request, Response, View

from agents.state_reads import decode_cursor, encode_cursor, paginate
from app.api.context import ApiContext, coverage, is_local
from app.api.errors import ApiError, json_response
from app.api.flow import dependents, flow_tree, mermaid, references, svg
from app.api.guard import authorize, check_id, int_param, read_body
from app.api.limits import clip
from models.segments import SegmentDefinition

__all__ = ["register_segments"]


def _public(defn: SegmentDefinition) -> dict[str, Any]:
    return defn.model_dump(mode="json", exclude_none=True)


def _refused_fields(refused: dict[str, Any] | None, in_force: int) -> dict[str, Any]:
    """The newest definition the evaluators refused, if newer than the one
    shown (which stays in force)."""
    if refused is None or refused["version"] <= in_force:
        return {"refused_version": None, "refused_reason": None}
    return {"refused_version": refused["version"], "refused_reason": refused["reason"]}


def _go_live(status: dict[int, dict[str, Any]], version: int) -> dict[str, Any]:
    parts = status.values()
    done = sum(1 for s in parts
               if s["version"] == version and s["backfill_version"] == version
               and s["backfill_complete"])
    return {
        "version": version,
        "partitions": len(status),
        "partitions_complete": done,
        "contacts_scanned": sum(s["contacts_scanned"] for s in parts
                                if s["backfill_version"] == version),
        "complete": bool(status) and done == len(status),
    }


def register_segments(ctx: ApiContext) -> None:
    """Every /segments route, in the order they were always registered."""
    _register_collection(ctx)
    _register_segment(ctx)
    _register_status(ctx)
    _register_members(ctx)
    _register_flow(ctx)


# -- helpers shared by the routes ---------------------------------------------

def _known(ctx: ApiContext, segment_id: str) -> SegmentDefinition:
    defn = ctx.writer.current(segment_id)
    if defn is None:
        raise ApiError(404, "segment_not_found", f'no segment "{clip(segment_id)}"')
    return defn


async def _text_or_json(ctx: ApiContext, request: Request, slot: Any) -> Any:
    kind, body = await read_body(request, ctx.settings, ctx.work, slot)
    return {"formula": body} if kind == "text" else body


async def _status_everywhere(ctx: ApiContext, request: Request, segment_id: str
                             ) -> dict[int, dict[str, Any]]:
    """Per-partition status, this worker's and (unless local) its peers'."""
    status = dict(ctx.reads.segment_status(segment_id))
    if not is_local(request):
        for answer in await ctx.cluster.gather(request, "GET", f"/segments/{segment_id}/status"):
            for partition, value in answer["partitions"].items():
                status.setdefault(int(partition), value)
    return status


async def _summary(ctx: ApiContext, request: Request, segment_id: str) -> dict[str, Any]:
    """The definition in force (or accepted here, pending), and the newest
    refused one if any: a segment whose only definition was refused has
    status ``refused`` and nothing in force (version 0)."""
    defn = ctx.writer.current(segment_id)
    refused = _refused_fields(ctx.writer.refusal(segment_id), defn.version if defn else 0)
    if defn is None and refused["refused_version"] is None:
        raise ApiError(404, "segment_not_found", f'no segment "{clip(segment_id)}"')
    status = await _status_everywhere(ctx, request, segment_id)
    applied = min((s["version"] for s in status.values()), default=0)
    count = await ctx.reads.member_count(segment_id)
    others: set[int] = set()
    if not is_local(request):
        for answer in await ctx.cluster.gather(request, "GET", f"/segments/{segment_id}"):
            count += answer["member_count"]
            others |= set(answer["partitions_answered"])
    version = defn.version if defn else 0
    return {
        "id": segment_id,
        "name": defn.name if defn else None,
        "kind": defn.kind if defn else None,
        "status": defn.status if defn else "refused",
        "version": version,
        "applied_version": applied,
        "formula": defn.formula if defn else None,
        **refused,
        "member_count": count,
        "go_live": _go_live(status, version),
        "definition": _public(defn) if defn else None,
        **coverage(ctx, others),
    }


async def _list(ctx: ApiContext, request: Request) -> dict[str, Any]:
    sizes = dict(await ctx.reads.segment_sizes(0.0))
    others: set[int] = set()
    if not is_local(request):
        for answer in await ctx.cluster.gather(request, "GET", "/segments"):
            others |= set(answer["partitions_answered"])
            for item in answer["segments"]:
                sizes[item["id"]] = sizes.get(item["id"], 0) + item["member_count"]
    applied = ctx.reads.definitions()
    refusals = ctx.reads.refusals()
    items = []
    for segment_id in sorted(applied.keys() | refusals.keys()):
        d = applied.get(segment_id)
        version = d.version if d else 0
        items.append({"id": segment_id, "name": d.name if d else None,
                      "kind": d.kind if d else None, "status": d.status if d else "refused",
                      "version": version, "formula": d.formula if d else None,
                      "updated_at": d.updated_at.isoformat() if d and d.updated_at else None,
                      **_refused_fields(refusals.get(segment_id), version),
                      "member_count": sizes.get(segment_id, 0)})
    return {"segments": items, **coverage(ctx, others)}


async def _members(ctx: ApiContext, request: Request, segment_id: str) -> dict[str, Any]:
    """One page of members across the cluster, or of one partition when a
    peer asks for it."""
    reads, cluster = ctx.reads, ctx.cluster
    partition_only = request.query.get("partition")
    # A peer asking for one partition fetches one extra member.
    limit = int_param(request, "limit", 100, 1, 1001 if partition_only else 1000)
    cursor = request.query.get("cursor") or None
    held = reads.held_partitions()
    peers = {} if is_local(request) else cluster.peers()

    async def fetch(partition: int, after: str | None, n: int) -> list[str]:
        if partition in held:
            return await reads.partition_members(segment_id, partition, after, n)
        cursor_there = encode_cursor(partition, after) if after is not None else None
        _, answer, _ = await cluster.call(
            request, peers[partition], "GET", f"/segments/{segment_id}/members",
            {"partition": partition, "cursor": cursor_there, "limit": min(n, 1001)})
        if not isinstance(answer, dict) or "members" not in answer:
            return []  # the segment is not (yet) known there
        return list(answer["members"])

    if partition_only is not None and is_local(request):
        # A peer asks for one partition (cursor: within it).
        partition = int_param(request, "partition", 0, 0, ctx.settings.partitions - 1)
        after = decode_cursor(cursor)[1] if cursor else None
        members = await fetch(partition, after, limit) if partition in held else []
        return {"segment_id": segment_id, "members": members,
                "next_cursor": None, **coverage(ctx)}
    order = sorted(held | set(peers))
    try:
        members, following = await paginate(fetch, order, cursor, limit)
    except ValueError as exc:
        raise ApiError(400, "invalid_cursor", f"cursor: {exc}") from exc
    return {"segment_id": segment_id, "members": members,
            "next_cursor": following, **coverage(ctx, peers)}


# -- routes, one function per job -----------------------------------------------

def _register_collection(ctx: ApiContext) -> None:
    """GET /segments (list with member counts), POST /segments (create)."""
    settings, writer = ctx.settings, ctx.writer

    @ctx.app.page("/segments", name="segments")
    class Segments(View):
        async def get(self, request: Request) -> Response:
            authorize(request, settings, write=False)
            return json_response(await _list(ctx, request))

        async def post(self, request: Request) -> Response:
            authorize(request, settings, write=True)
            async with ctx.work.slot() as slot:
                body = await _text_or_json(ctx, request, slot)
                segment_id = body.get("id") if isinstance(body, dict) else None
                if isinstance(segment_id, str) and writer.current(segment_id) is not None:
                    raise ApiError(409, "segment_exists",
                                   f'segment "{segment_id}" exists; use PUT '
                                   f'/segments/{segment_id}')
                defn = await writer.build(None, body, existing=None, slot=slot)
            return json_response(_accepted(ctx, await writer.put(defn)), 202)


def _accepted(ctx: ApiContext, defn: SegmentDefinition) -> dict[str, Any]:
    """The accepted definition, and what it reads that no input carried yet
    (a typo such as ``citty``: a warning, the definition is accepted)."""
    checked = ctx.writer.last_checked
    deps = checked[1] if checked is not None and checked[0] is defn else None
    return {**_public(defn), "warnings": ctx.reads.field_warnings(defn, deps)}


def _register_segment(ctx: ApiContext) -> None:
    """One segment: get, put, delete; activate and stop."""
    settings, writer = ctx.settings, ctx.writer

    @ctx.app.page("/segments/{segment_id}", name="segment")
    class Segment(View):
        async def get(self, request: Request, segment_id: str) -> Response:
            authorize(request, settings, write=False)
            check_id(segment_id)
            return json_response(await _summary(ctx, request, segment_id))

        async def put(self, request: Request, segment_id: str) -> Response:
            authorize(request, settings, write=True)
            check_id(segment_id)
            async with ctx.work.slot() as slot:
                body = await _text_or_json(ctx, request, slot)
                existing = writer.current(segment_id)
                if existing is not None and isinstance(body, dict) and set(body) == {"formula"}:
                    # Formula text alone updates the formula of an existing segment.
                    body = {**_public(existing), "formula": body["formula"]}
                    body.pop("condition", None)
                defn = await writer.build(segment_id, body, existing=existing, slot=slot)
            return json_response(_accepted(ctx, await writer.put(defn)), 202)

        async def delete(self, request: Request, segment_id: str) -> Response:
            authorize(request, settings, write=True)
            check_id(segment_id)
            await writer.delete(segment_id)
            return json_response({"op": "delete", "segment_id": segment_id}, 202)

    @ctx.app.page("/segments/{segment_id}/activate", name="segment-activate")
    class Activate(View):
        async def post(self, request: Request, segment_id: str) -> Response:
            authorize(request, settings, write=True)
            check_id(segment_id)
            return json_response(_public(await writer.set_status(segment_id, "live")), 202)

    @ctx.app.page("/segments/{segment_id}/stop", name="segment-stop")
    class Stop(View):
        async def post(self, request: Request, segment_id: str) -> Response:
            authorize(request, settings, write=True)
            check_id(segment_id)
            return json_response(_public(await writer.set_status(segment_id, "stopped")), 202)


def _register_status(ctx: ApiContext) -> None:
    settings, writer = ctx.settings, ctx.writer

    @ctx.app.page("/segments/{segment_id}/status", name="segment-status")
    class Status(View):
        """Per partition held here: applied version and backfill progress
        (what the integration tests wait on), plus the summary fields."""

        async def get(self, request: Request, segment_id: str) -> Response:
            authorize(request, settings, write=False)
            check_id(segment_id)
            status = await _status_everywhere(ctx, request, segment_id)
            defn = writer.current(segment_id)
            return json_response({
                "segment_id": segment_id,
                "version": defn.version if defn else 0,
                "status": defn.status if defn else "deleted",
                "go_live": _go_live(status, defn.version if defn else 0),
                "partitions": {str(p): v for p, v in sorted(status.items())},
            })


def _register_members(ctx: ApiContext) -> None:
    """Members (cursor-paginated) and static member add / remove."""
    settings, writer = ctx.settings, ctx.writer

    @ctx.app.page("/segments/{segment_id}/members", name="segment-members")
    class Members(View):
        async def get(self, request: Request, segment_id: str) -> Response:
            authorize(request, settings, write=False)
            check_id(segment_id)
            _known(ctx, segment_id)
            return json_response(await _members(ctx, request, segment_id))

    @ctx.app.page("/segments/{segment_id}/members/{contact_id}", name="segment-member")
    class Member(View):
        """Static edits: explicit add / remove (any segment kind)."""

        async def put(self, request: Request, segment_id: str, contact_id: str) -> Response:
            authorize(request, settings, write=True)
            check_id(segment_id)
            check_id(contact_id, "contact id")
            edit = await writer.static_edit(segment_id, contact_id, "add")
            return json_response(edit.model_dump(mode="json", exclude_none=True), 202)

        async def delete(self, request: Request, segment_id: str, contact_id: str) -> Response:
            authorize(request, settings, write=True)
            check_id(segment_id)
            check_id(contact_id, "contact id")
            edit = await writer.static_edit(segment_id, contact_id, "remove")
            return json_response(edit.model_dump(mode="json", exclude_none=True), 202)


def _register_flow(ctx: ApiContext) -> None:
    settings = ctx.settings

    @ctx.app.page("/segments/{segment_id}/flow", name="segment-flow")
    class Flow(View):
        async def get(self, request: Request, segment_id: str) -> Response:
            authorize(request, settings, write=False)
            check_id(segment_id)
            defn = _known(ctx, segment_id)
            tree = flow_tree(segment_id, defn.condition)
            fmt = request.query.get("format", "json")
            if fmt == "mermaid":
                return self.text(mermaid(tree), content_type="text/plain")
            if fmt == "svg":
                return self.text(svg(tree), content_type="image/svg+xml")
            if fmt != "json":
                raise ApiError(400, "invalid_parameter",
                               "query parameter 'format' must be json, mermaid or svg")
            # Every definition in force or accepted here and not applied yet
            # (what GET /segments/{id} answers for each), drafts included.
            known = dict(ctx.reads.definitions())
            for sid, accepted in ctx.writer.pending().items():
                if accepted is None:
                    known.pop(sid, None)
                else:
                    known[sid] = accepted

            def linked(ids: list[str]) -> list[dict[str, Any]]:
                return [{"segment_id": s, "status": known[s].status if s in known else None}
                        for s in ids]

            return json_response({"segment_id": segment_id, "formula": defn.formula,
                                  "mermaid": mermaid(tree), "svg": svg(tree),
                                  "references": linked(references(defn.condition)),
                                  "dependents": linked(dependents(segment_id, known))})
