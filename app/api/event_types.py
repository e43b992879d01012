"""Event-type declarations (docs/event-types.md): list, show, declare.

``GET /event-types`` and ``GET /event-types/{name}`` answer from this
worker's declarations (the built-in ones and the event-types topic's, read
by ``agents.event_types.EventTypeFeed``). ``PUT /event-types/{name}`` (the
write token) validates a declaration, numbers its version (the one in force
plus one; a given version must be exactly that) and produces it to the
compacted event-types topic, which every worker's ingest reads: 202, in
force on a worker once it has read it (the answer's ``version`` is what
``GET`` shows then). A body equal to the declaration in force changes
nothing (200, same version).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
from faust.web import Request, Response, View
from pydantic import ValidationError

from agents.event_types import EventTypeFeed
from app.api.context import ApiContext
from app.api.errors import ApiError, json_response, validation_error
from app.api.guard import authorize, read_body
from app.api.limits import clip
from models.event_types import EventTypeDeclaration, is_event_type_name

__all__ = ["EventTypeWriter", "register_event_types"]

# Fields the server owns: a client's value is ignored (version is checked).
_SERVER_FIELDS = ("updated_at",)
_COMPARED = ("updated_at", "version")
# Seconds a write waits for a just-started worker to read the event-types topic.
LOAD_WAIT = 10.0


def check_name(name: str) -> str:
    if not is_event_type_name(name):
        raise ApiError(422, "invalid_id",
                       f"event type {clip(name)!r} is not an event type name: letters, digits "
                       "and _, starting with a letter or _ (at most 64)",
                       [{"loc": "name", "message": "not an event type name",
                         "type": "invalid_id"}])
    return name


def listing(feed: EventTypeFeed, decl: EventTypeDeclaration) -> dict[str, Any]:
    return {**decl.public(), "source": feed.registry.source(decl.name)}


class EventTypeWriter:
    """Declarations written through this worker's API, one at a time."""

    def __init__(self, feed: EventTypeFeed, topic: Any) -> None:
        self.feed, self._topic = feed, topic
        self._writing = asyncio.Lock()

    def build(self, name: str, body: Any) -> EventTypeDeclaration:
        if not isinstance(body, dict):
            raise ApiError(422, "invalid", "an event type declaration must be a JSON object")
        values = {k: v for k, v in body.items() if k not in _SERVER_FIELDS}
        if values.setdefault("name", name) != name:
            raise ApiError(422, "invalid",
                           f"body name {clip(str(values['name']))!r} differs from the URL's "
                           f"{clip(name)!r}",
                           [{"loc": "name", "message": "must match the URL",
                             "type": "id_mismatch"}])
        wanted = self.feed.registry.next_version(name)
        given = values.get("version")
        current = self.feed.registry.get(name)
        values["version"] = wanted
        values["updated_at"] = datetime.now(UTC).isoformat()
        try:
            decl = EventTypeDeclaration.model_validate(values)
        except ValidationError as exc:
            raise validation_error(exc, "event type declaration") from exc
        for ce_type in decl.cloudevents_types:
            owner = self.feed.registry.cloudevents_owner(ce_type)
            if owner is not None and owner != name:
                raise ApiError(409, "cloudevents_type_taken",
                               f"CloudEvents type {clip(ce_type)!r} is already event type "
                               f'"{owner}" (its cloudevents_types)',
                               [{"loc": "cloudevents_types", "message": f"listed by {owner}",
                                 "type": "cloudevents_type_taken"}])
        if given is not None and given != wanted and not (
                current is not None and given == current.version and _same(decl, current)):
            raise ApiError(409, "version_conflict",
                           f'event type "{name}" is at version {wanted - 1} here; a change '
                           f"is version {wanted} (omit version to have it set)",
                           [{"loc": "version", "message": f"must be {wanted}",
                             "type": "version_conflict"}])
        return decl

    async def put(self, name: str, body: Any) -> tuple[EventTypeDeclaration, bool]:
        """``(declaration in force afterwards, whether it was produced)``."""
        if not await self.feed.wait_loaded(LOAD_WAIT):
            # a worker just started: versions would be numbered from the built-in ones
            raise ApiError(503, "not_ready", "this worker has not read the event types yet; "
                           "retry", headers={"Retry-After": "1"})
        async with self._writing:
            await self.feed.catch_up()  # number versions after every earlier write
            decl = self.build(name, body)
            current = self.feed.registry.get(name)
            if current is not None and _same(decl, current):
                return current, False
            value = orjson.dumps(decl.model_dump(mode="json", exclude_none=True))
            future = await self._topic.send(key=name.encode(), value=value)
            await future  # durable before 202
            # Read our own write before answering: GET and segment writes
            # here see the declaration at once.
            await self.feed.catch_up()
            return decl, True


def _same(a: EventTypeDeclaration, b: EventTypeDeclaration) -> bool:
    return (a.model_dump(exclude=set(_COMPARED)) == b.model_dump(exclude=set(_COMPARED)))


def register_event_types(ctx: ApiContext, feed: EventTypeFeed, topic: Any) -> None:
    settings = ctx.settings
    writer = EventTypeWriter(feed, topic)

    @ctx.app.page("/event-types", name="event-types")
    class EventTypes(View):
        async def get(self, request: Request) -> Response:
            authorize(request, settings, write=False)
            return json_response({
                "event_types": [listing(feed, d) for d in feed.registry.all()],
                "accept_undeclared": settings.accept_undeclared_event_types,
                "topic": feed.topic or None,
            })

    @ctx.app.page("/event-types/{name}", name="event-type")
    class EventType(View):
        async def get(self, request: Request, name: str) -> Response:
            authorize(request, settings, write=False)
            check_name(name)
            decl = feed.registry.get(name)
            if decl is None:
                raise ApiError(404, "event_type_not_found",
                               feed.registry.undeclared_reason(name, feed.topic or None))
            return json_response(listing(feed, decl))

        async def put(self, request: Request, name: str) -> Response:
            authorize(request, settings, write=True)
            check_name(name)
            async with ctx.work.slot() as slot:
                kind, body = await read_body(request, settings, ctx.work, slot)
            if kind == "text":
                raise ApiError(415, "unsupported_media_type",
                               "send the declaration as application/json or application/yaml")
            decl, produced = await writer.put(name, body)
            if not produced:
                return json_response({**listing(feed, decl), "result": "unchanged"}, 200)
            return json_response({**decl.public(), "source": "declared", "result": "declared"},
                                 202)


def openapi_parts() -> tuple[dict[str, Any], dict[str, Any]]:
    """``(paths, component schemas)`` of these routes for ``/openapi.json``."""
    from pydantic import TypeAdapter

    from app.api import openapi as doc

    declaration = TypeAdapter(EventTypeDeclaration).json_schema(
        mode="serialization", ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = dict(declaration.pop("$defs", {}))
    schemas["EventTypeDeclaration"] = declaration
    source = {"enum": ["declared", "default"], "description":
              "declared: from the event-types topic; default: built-in"}
    result = {"enum": ["declared", "unchanged"], "description":
              "declared: a new version was produced; unchanged: the same as the "
              "declaration in force"}
    # The declaration's fields (additionalProperties false) and the answer's own.
    schemas["EventType"] = {**declaration, "title": "EventType", "properties": {
        **declaration["properties"], "source": source},
        "required": [*declaration.get("required", []), "source"]}
    schemas["EventTypeWritten"] = {**schemas["EventType"], "title": "EventTypeWritten",
                                   "properties": {**schemas["EventType"]["properties"],
                                                  "result": result},
                                   "required": [*schemas["EventType"]["required"], "result"]}
    schemas["EventTypeList"] = doc._obj({
        "event_types": {"type": "array", "items": doc._ref("EventType")},
        "accept_undeclared": {"type": "boolean", "description":
                              "SEGMENTFLOW_ACCEPT_UNDECLARED_EVENT_TYPES"},
        "topic": doc._NULLABLE_STR})
    name = {"name": "name", "in": "path", "required": True, "schema": doc._STR}
    body = {"required": True, "content": {
        "application/json": {"schema": {"type": "object", "description":
                                        "EventTypeDeclaration fields; version and updated_at "
                                        "are set by the server"}},
        "application/yaml": {"schema": {"type": "object"}}}}
    put = doc._write("declare or change an event type (a new version)",
                     doc._json(doc._ref("EventTypeWritten"),
                               "accepted (produced to event-types)"),
                     extra={"200": doc._json(doc._ref("EventTypeWritten"),
                                             "the same as the declaration in force: unchanged"),
                            "400": doc._err("unreadable body"),
                            "409": doc._err("a version other than the next one, or a "
                                            "CloudEvents type another event type lists"),
                            "415": doc._err("unsupported content type")})
    put["requestBody"] = body
    paths = {
        "/event-types": {"get": doc._read(
            "event types in force here (built-in and declared)",
            doc._json(doc._ref("EventTypeList"), "event types"))},
        "/event-types/{name}": {
            "parameters": [name],
            "get": doc._read("one event type's declaration in force",
                             doc._json(doc._ref("EventType"), "declaration"),
                             extra={"404": doc._err("not declared")}),
            "put": put},
    }
    return paths, schemas
