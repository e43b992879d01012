"""The web console at ``/ui``, served by the worker's web server (the API's
port), working offline: one HTML page, one script and one style sheet from
``static/``, no third-party library (issue #15).

The page itself is open and holds no data; everything it shows comes from
the API with the token the user enters, so members and explanations are
never served without it. Two console back-end routes sit next to the API
(outside the OpenAPI document, which describes the API only):

- ``POST /ui/api/check``: live validation of a draft definition, the checks
  of a create/update (the model, with the formula's line and column, then
  the references against the applied and pending catalog) without
  producing anything;
- ``GET /ui/api/changes?segment=ID``: membership changes as server-sent
  events (``app.console.feed``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web
from faust.web import Request, Response, View

from app.api.context import ApiContext
from app.api.errors import ApiError, json_response
from app.api.guard import authorize, check_id, read_body
from app.api.limits import clip
from app.console.feed import ChangeFeed, sse_event
from models.ids import is_valid_id
from models.segments import SegmentDefinition

__all__ = ["register_console"]

STATIC = Path(__file__).with_name("static")
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
          ".svg": "image/svg+xml"}
# Scripts and styles from this origin only, no inline code, no framing: the
# console needs nothing else (and a token in the page is worth protecting).
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
HEARTBEAT_SECONDS = 15.0
_BATCH = 200  # changes written to a stream at once, at most


def _assets() -> dict[str, tuple[bytes, str]]:
    return {path.name: (path.read_bytes(), _TYPES[path.suffix])
            for path in sorted(STATIC.iterdir()) if path.suffix in _TYPES}


def register_console(ctx: ApiContext) -> None:
    app, settings = ctx.app, ctx.settings
    assets = _assets()
    feed = ChangeFeed(settings.bootstrap_servers, settings.topics.membership_changes,
                      settings.partitions)

    async def close_feed(_: Any) -> None:
        await feed.close()

    # Runs before the web server waits for open requests: streams end at once.
    app.web.web_app.on_shutdown.append(close_feed)

    def asset(name: str) -> web.Response:
        found = assets.get(name)
        if found is None:
            raise ApiError(404, "not_found", f"no console file {clip(name)!r}")
        body, ctype = found
        return web.Response(body=body, content_type=ctype, charset="utf-8", headers=_HEADERS)

    @app.page("/ui", name="console")
    class Console(View):
        async def get(self, request: Request) -> Response:
            return asset("index.html")

    @app.page("/ui/", name="console-slash")
    class ConsoleSlash(View):
        async def get(self, request: Request) -> Response:
            return asset("index.html")

    @app.page("/ui/static/{name}", name="console-static")
    class Static(View):
        async def get(self, request: Request, name: str) -> Response:
            return asset(name)

    @app.page("/ui/api/check", name="console-check")
    class Check(View):
        """The checks of a create/update, nothing produced: 200 with the
        definition as it would be accepted, or the API's error (422 with
        the field and, for a formula, its line and column; 409 for a
        reference cycle)."""

        async def post(self, request: Request) -> Response:
            authorize(request, settings, write=False)
            async with ctx.work.slot() as slot:
                kind, body = await read_body(request, settings, ctx.work, slot)
                if kind == "text":
                    body = {"formula": body}
                if not isinstance(body, dict):
                    raise ApiError(422, "invalid", "a draft must be a JSON object")
                body = {**body, "id": body.get("id") or "draft"}
                segment_id = body["id"]
                existing = (ctx.writer.current(segment_id)
                            if isinstance(segment_id, str) and is_valid_id(segment_id)
                            else None)
                defn: SegmentDefinition = await ctx.writer.build(
                    None, body, existing=existing, slot=slot)
            ctx.writer.check_references(defn)
            return json_response({"valid": True,
                                  "definition": defn.model_dump(mode="json", exclude_none=True)})

    @app.page("/ui/api/changes", name="console-changes")
    class Changes(View):
        """``text/event-stream``: ``ready`` once following, then one
        ``change`` event per membership change (the record's JSON),
        ``dropped`` when this stream fell behind and lost some; a comment
        every 15 s keeps proxies from closing it."""

        async def get(self, request: Request) -> web.StreamResponse:
            authorize(request, settings, write=False)
            segment_id = request.query.get("segment") or None
            if segment_id is not None:
                check_id(segment_id)
            try:
                sub = await feed.subscribe(segment_id)
            except Exception as exc:
                raise ApiError(503, "unavailable",
                               f"cannot follow the membership changes: {clip(str(exc), 200)}",
                               headers={"Retry-After": "2"}) from exc
            response = web.StreamResponse(headers={
                "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no"})
            try:
                await response.prepare(request)
                await response.write(b"retry: 2000\n" + sse_event("ready", b"{}"))
                await _stream(response, sub)
            except ConnectionError:
                pass  # the browser went away
            finally:
                await feed.unsubscribe(sub)
            return response


async def _stream(response: web.StreamResponse, sub: Any) -> None:
    reported = 0
    while True:
        try:
            first = await asyncio.wait_for(sub.queue.get(), HEARTBEAT_SECONDS)
        except TimeoutError:
            await response.write(b": keep-alive\n\n")
            continue
        items = [first]
        while len(items) < _BATCH and not sub.queue.empty():
            items.append(sub.queue.get_nowait())
        out = []
        if sub.dropped > reported:
            out.append(sse_event("dropped", str(sub.dropped - reported).encode()))
            reported = sub.dropped
        out.extend(sse_event("change", item) for item in items if item is not None)
        if out:
            await response.write(b"".join(out))
        if None in items:
            return  # the feed closed (the worker is stopping)
