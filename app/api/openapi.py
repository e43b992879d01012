"""The OpenAPI 3.1 document of the HTTP API, served at ``/openapi.json``.

Hand-written paths; request and component schemas for the contracts come
from the pydantic models, so they cannot drift. Tests check that every route
the worker serves is documented here and that real responses validate
against the documented schemas.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import TypeAdapter

from models.inputs import StaticEdit
from models.segments import SegmentDefinition

__all__ = ["openapi_document", "response_schema"]

_REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props,
            "required": required if required is not None else sorted(props)}


_STR = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_INT = {"type": ["integer", "null"]}
# The newest definition the evaluators refused (null when none): the previous
# version stays in force; status "refused" when no version is in force at all.
_REFUSED = {
    "refused_version": {**_NULLABLE_INT, "description":
                        "the newest version the evaluators refused, if newer than the one "
                        "in force (which stays in force)"},
    "refused_reason": {**_NULLABLE_STR, "description": "why it was refused"},
}
_COVERAGE = {
    "partitions_answered": {"type": "array", "items": _INT},
    "partitions_total": _INT,
    "complete": {"type": "boolean", "description":
                 "false when other workers hold some partitions (their share is missing)"},
}

# The clock an answer was computed with (docs/clock.md).
_CLOCK = {
    "clock": {"enum": ["wall", "event"], "description": "SEGMENTFLOW_CLOCK"},
    "event_clock": {**_NULLABLE_STR, "description":
                    "the partition's event clock (latest event time seen or advanced to); "
                    "null on the wall clock or before any event time"},
    "now": {"type": "string", "description": "the time evaluations use"},
}

_SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _obj({
        "code": _STR, "message": _STR,
        "details": {"type": "array", "items": {"type": "object"}}})}),
    "GoLive": _obj({"version": _INT, "partitions": _INT, "partitions_complete": _INT,
                    "contacts_scanned": _INT, "complete": _BOOL}),
    "SegmentListItem": _obj({"id": _STR, "name": _NULLABLE_STR, "kind": _NULLABLE_STR,
                             "status": _STR, "version": _INT, "formula": _NULLABLE_STR,
                             "updated_at": {**_NULLABLE_STR, "description":
                                            "when the definition in force was written"},
                             **_REFUSED, "member_count": _INT}),
    "SegmentList": _obj({"segments": {"type": "array", "items": _ref("SegmentListItem")},
                         **_COVERAGE}),
    "SegmentSummary": _obj({
        "id": _STR, "name": _NULLABLE_STR, "kind": _NULLABLE_STR,
        "status": {"type": "string", "description":
                   "of the definition in force; 'refused' when none is (its only "
                   "definition was refused)"},
        "version": _INT, "applied_version": _INT, "formula": _NULLABLE_STR, **_REFUSED,
        "member_count": {"type": "integer", "description": "exact (a scan of the contacts)"},
        "go_live": _ref("GoLive"),
        "definition": {"anyOf": [_ref("SegmentDefinition"), {"type": "null"}]},
        **_COVERAGE}),
    "SegmentStatus": _obj({"segment_id": _STR, "version": _INT, "status": _STR,
                           "go_live": _ref("GoLive"),
                           "partitions": {"type": "object", "additionalProperties": _obj({
                               "version": _INT, "backfill_version": {"type": ["integer", "null"]},
                               "contacts_scanned": _INT, "backfill_complete": _BOOL})}}),
    "Deleted": _obj({"op": {"const": "delete"}, "segment_id": _STR}),
    "Members": _obj({"segment_id": _STR, "members": {"type": "array", "items": _STR},
                     "next_cursor": _NULLABLE_STR, **_COVERAGE}),
    "ContactSegments": _obj({"contact_id": _STR, "partition": _INT,
                             "segments": {"type": "array", "items": _STR}}),
    "Trace": {"type": "object", "required": ["text", "result"], "properties": {
        "text": _STR, "result": _BOOL, "seen": _STR, "threshold": _STR,
        "children": {"type": "array", "items": {"$ref": "#/components/schemas/Trace"}}}},
    "Explain": _obj({"contact_id": _STR, "segment_id": _STR, "member": _BOOL,
                     "evaluates_to": _BOOL, "text": _STR, "trace": _ref("Trace"),
                     "partition": _INT, **_CLOCK}),
    "PartitionStatus": _obj({
        **_CLOCK,
        "clock_lag_seconds": {"type": ["number", "null"], "description":
                              "wall clock minus the event clock (0 on the wall clock; null "
                              "before the partition has seen an event time)"},
        "applied_offset": {**_NULLABLE_INT, "description":
                           "offset of the last input-log record the state includes"},
        "committed_offset": {**_NULLABLE_INT, "description":
                             "next input offset committed (its changes acknowledged)"},
        "end_offset": {**_NULLABLE_INT, "description": "the input log's end offset"},
        "input_lag": {**_NULLABLE_INT, "description":
                      "input-log records not yet applied (end - applied - 1)"},
        "backfills_running": {**_NULLABLE_INT, "description":
                              "segments whose go-live (or removal) backfill runs here"},
        "batches_staged": {**_NULLABLE_INT, "description":
                           "batches evaluated since the partition was opened here"},
        "batches_settled": {**_NULLABLE_INT, "description":
                            "every batch numbered below this has its outputs acknowledged "
                            "(batches settle in order)"}}),
    "Stage": _obj({"group": _STR, "behind": {"type": "integer", "description":
                                             "inputs not yet committed by the group"}}),
    "Status": _obj({
        "clock": {"enum": ["wall", "event"]},
        "caught_up": {"type": "boolean", "description":
                      "every input produced before the request has been applied and its "
                      "changes are on the output topics (consumer groups' committed offsets; "
                      "every partition answered, no backfill running, nothing in flight)"},
        "backfills_running": {"type": "integer", "description":
                              "go-live backfills running, summed over partitions"},
        "ingest": _ref("Stage"), "evaluator": _ref("Stage"),
        "partitions": {"type": "object", "additionalProperties": _ref("PartitionStatus")},
        "standbys": {"type": "object", "additionalProperties": {"type": "array", "items": _INT},
                     "description": "standby copies (SEGMENTFLOW_STANDBY_REPLICAS) per "
                                    "partition: each copy's lag, in changelog records not "
                                    "applied yet"},
        **_COVERAGE}),
    "ClockAdvanced": _obj({"to": _STR, "partitions": _INT, "clock": {"enum": ["event"]}}),
    "Preview": _obj({"formula": _NULLABLE_STR, "size": _INT, "contacts_scanned": _INT,
                     "sample": {"type": "array", "items": _STR},
                     # against the current members of the same id (a new id: all join)
                     "impact": _obj({"join": _INT, "leave": _INT,
                                     "join_sample": {"type": "array", "items": _STR},
                                     "leave_sample": {"type": "array", "items": _STR}}),
                     "history": _obj({"retained_since": _NULLABLE_STR,
                                      "note": _NULLABLE_STR}),
                     # fields the draft reads that no input carried yet (typos)
                     "warnings": {"type": "array", "items": _STR},
                     **_COVERAGE}),
    "Backtest": _obj({"formula": _NULLABLE_STR, "contacts_scanned": _INT,
                      "series": {"type": "array", "items": _obj({"at": _STR, "size": _INT})},
                      "sample": {"type": "array", "items": _STR}, "note": _STR,
                      **_COVERAGE}),
    "Engagement": _obj({
        "segment_id": _STR, "days": _INT, "members": _INT,
        "types": {"type": "array", "items": _STR},
        "series": {"type": "array", "items": _obj({
            "day": _STR,
            "interactions": {"type": "object", "additionalProperties": _INT},
            "per_member": {"type": "object", "additionalProperties": {"type": "number"}}})},
        **_COVERAGE}),
    "Fields": _obj({
        "fields": {"type": "object", "description": "scope ('contact', 'account', "
                   "'event:<type>') -> field path -> JSON type -> inputs that carried it",
                   "additionalProperties": {"type": "object", "additionalProperties": {
                       "type": "object", "additionalProperties": _INT}}},
        "truncated": _BOOL, **_COVERAGE}),
    "Flow": _obj({"segment_id": _STR, "formula": _NULLABLE_STR, "mermaid": _STR, "svg": _STR,
                  "references": {"type": "array", "items": _ref("FlowLink"),
                                 "description": "segments its condition reads"},
                  "dependents": {"type": "array", "items": _ref("FlowLink"),
                                 "description": "segments (any status) whose condition reads it"}}),
    "FlowLink": _obj({"segment_id": _STR, "status": {
        "type": ["string", "null"], "description": "null: no such segment (yet)"}}),
    "Health": _obj({"status": _STR}),
    "Ready": _obj({"ready": _BOOL, "topics_declared": _BOOL, "assigned_partitions": _INT,
                   "rebalancing": _BOOL, "tables_recovered": _BOOL}),
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_SEGMENT_ID = {"name": "segment_id", "in": "path", "required": True, "schema": _STR}
_CONTACT_ID = {"name": "contact_id", "in": "path", "required": True, "schema": _STR}
_LOCAL = {"name": "local", "in": "query", "schema": {"enum": ["1"]},
          "description": "1: answer from this worker's partitions only (what workers "
                         "send each other); default: every partition, gathered"}
_AUTH_ERRORS = {"401": _err("no or missing bearer token"),
                "403": _err("invalid token, or a read-only token on a write")}
_WRITE_ERRORS = {**_AUTH_ERRORS, "413": _err("body or stored definition too large"),
                 "422": _err("invalid id in the path, or invalid definition"),
                 "503": _err("busy (Retry-After), out of time, or no partition held yet")}
_ID_ERROR = {"422": _err("invalid id in the path")}
# Reads need the read or the write token once any token is configured.
_READ_SECURITY = [{"bearer": []}, {}]
_DEFINITION_BODY = {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "description":
                                    "SegmentDefinition fields; version and timestamps are "
                                    "set by the server"}},
    "application/yaml": {"schema": {"type": "object"}},
    "text/plain": {"schema": {"type": "string", "description": "formula text"}}}}


def _write(summary: str, ok: dict[str, Any], *, body: bool = False,
           extra: dict[str, Any] | None = None, params: list[Any] | None = None
           ) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "security": [{"bearer": []}],
                          "responses": {"202": ok, **_WRITE_ERRORS, **(extra or {})}}
    if body:
        op["requestBody"] = _DEFINITION_BODY
        op["responses"].update({"400": _err("unreadable body"),
                                "415": _err("unsupported content type"),
                                "422": _err("invalid definition (names field and position), "
                                            "or a body too deep / with too many values / "
                                            "with YAML anchors"),
                                "409": _err("exists, or a reference cycle (with the applied "
                                            "segments or ones accepted, not yet applied)")})
    if params:
        op["parameters"] = params
    return op


def _read(summary: str, ok: dict[str, Any], *, params: list[Any] | None = None,
          extra: dict[str, Any] | None = None, open_: bool = False) -> dict[str, Any]:
    if open_:
        op: dict[str, Any] = {"summary": summary, "responses": {"200": ok, **(extra or {})}}
    else:
        op = {"summary": summary, "security": _READ_SECURITY,
              "responses": {"200": ok, **_AUTH_ERRORS, **_ID_ERROR, **(extra or {})}}
    if params:
        op["parameters"] = params
    return op


_NOT_FOUND = {"404": _err("no such segment")}
_DEFINITION = _json(_ref("SegmentDefinition"), "accepted (produced to segment-definitions)")
# A create / update also names the fields it reads that no input carried yet.
_ACCEPTED = _json(_ref("AcceptedSegment"),
    "accepted (produced to segment-definitions), with warnings about fields never seen")


def _paths() -> dict[str, Any]:
    return {
        "/health": {"get": _read("process is up", _json(_ref("Health"), "ok"), open_=True)},
        "/ready": {"get": _read("holds partitions, recovered, not rebalancing",
                                _json(_ref("Ready"), "ready"),
                                extra={"503": _json(_ref("Ready"), "not ready")}, open_=True)},
        "/metrics": {"get": _read("Prometheus exposition (segment ids only with "
                                  "SEGMENTFLOW_METRICS_SEGMENT_LABELS=true)", {
            "description": "text format 0.0.4",
            "content": {"text/plain": {"schema": _STR}}}, open_=True)},
        "/openapi.json": {"get": _read("this document", _json({"type": "object"}, "OpenAPI"),
                                       open_=True)},
        "/asyncapi.json": {"get": _read(
            "the AsyncAPI 3.0 document of this worker's Kafka topics (schemas/asyncapi.yaml "
            "with this worker's topic names and partitions)",
            _json({"type": "object"}, "AsyncAPI"), open_=True)},
        "/asyncapi.yaml": {"get": _read("the same AsyncAPI document in YAML", {
            "description": "AsyncAPI",
            # A YAML document is a mapping once parsed (schemathesis parses it)
            "content": {"application/yaml": {"schema": {"type": "object"}}}}, open_=True)},
        "/segments": {
            "get": _read("list segments (with exact member counts)",
                         _json(_ref("SegmentList"), "segments"), params=[_LOCAL]),
            "post": _write("create a segment", _ACCEPTED, body=True),
        },
        "/segments/{segment_id}": {
            "parameters": [_SEGMENT_ID],
            "get": _read("status, version, formula, member count, go-live progress",
                         _json(_ref("SegmentSummary"), "segment"), extra=_NOT_FOUND,
                         params=[_LOCAL]),
            "put": _write("create or update a segment", _ACCEPTED, body=True),
            "delete": _write("delete a segment (every member leaves)",
                             _json(_ref("Deleted"), "accepted"), extra=_NOT_FOUND),
        },
        "/segments/{segment_id}/activate": {
            "parameters": [_SEGMENT_ID],
            "post": _write("new version with status live", _DEFINITION, extra=_NOT_FOUND)},
        "/segments/{segment_id}/stop": {
            "parameters": [_SEGMENT_ID],
            "post": _write("new version with status stopped (membership frozen)",
                           _DEFINITION, extra=_NOT_FOUND)},
        "/segments/{segment_id}/status": {
            "parameters": [_SEGMENT_ID],
            "get": _read("per-partition applied version and backfill progress",
                         _json(_ref("SegmentStatus"), "status"), params=[_LOCAL])},
        "/segments/{segment_id}/members": {
            "parameters": [_SEGMENT_ID],
            "get": _read("members, cursor-paginated", _json(_ref("Members"), "a page"),
                         params=[{"name": "limit", "in": "query",
                                  "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                                 {"name": "cursor", "in": "query", "schema": _STR}, _LOCAL,
                                 {"name": "partition", "in": "query",
                                  "schema": {"type": "integer", "minimum": 0},
                                  "description": "with local=1: that partition only"}],
                         extra={**_NOT_FOUND, "400": _err("bad limit or cursor")})},
        "/segments/{segment_id}/members/{contact_id}": {
            "parameters": [_SEGMENT_ID, _CONTACT_ID],
            "put": _write("static add", _json(_ref("StaticEdit"), "accepted"), extra=_NOT_FOUND),
            "delete": _write("static remove", _json(_ref("StaticEdit"), "accepted"),
                             extra=_NOT_FOUND)},
        "/segments/{segment_id}/flow": {
            "parameters": [_SEGMENT_ID],
            "get": _read("the condition tree as Mermaid text and SVG", {
                "description": "format=json (default), mermaid or svg",
                "content": {"application/json": {"schema": _ref("Flow")},
                            "text/plain": {"schema": _STR},
                            "image/svg+xml": {"schema": _STR}}},
                params=[{"name": "format", "in": "query",
                         "schema": {"enum": ["json", "mermaid", "svg"]}}],
                extra=_NOT_FOUND)},
        "/contacts/{contact_id}/segments": {
            "parameters": [_CONTACT_ID],
            "get": _read("segments the contact is a member of",
                         _json(_ref("ContactSegments"), "segments"),
                         extra={"404": _err("no such contact"),
                                "503": _err("partition held by another worker")})},
        "/contacts/{contact_id}/explain/{segment_id}": {
            "parameters": [_CONTACT_ID, _SEGMENT_ID],
            "get": _read("why the contact is (not) a member: a readable trace", {
                "description": "format=json (default) or text",
                "content": {"application/json": {"schema": _ref("Explain")},
                            "text/plain": {"schema": _STR}}},
                params=[{"name": "format", "in": "query", "schema": {"enum": ["json", "text"]}}],
                extra={"404": _err("no such contact or segment"),
                       "503": _err("partition held by another worker")})},
        "/status": {
            "get": _read("per partition: clock, lag and input-log offsets; caught_up",
                         _json(_ref("Status"), "status"), params=[_LOCAL],
                         extra={"503": _err("Kafka unreachable, or a peer did not answer")})},
        "/clock/advance": {
            "post": {"summary": "move every partition's event clock forward to a time "
                                "(after every input produced before the request)",
                     "parameters": [{"name": "timeout", "in": "query",
                                     "schema": {"type": "integer", "minimum": 1,
                                                "maximum": 600},
                                     "description": "seconds to wait for ingest (30)"}],
                     "requestBody": {"required": True, "content": {
                         "application/json": {"schema": _obj({"to": _STR})},
                         "text/plain": {"schema": {"type": "string",
                                                   "description": "the time"}}}},
                     "security": [{"bearer": []}],
                     "responses": {"202": _json(_ref("ClockAdvanced"),
                                                "written to every partition"),
                                   "400": _err("unreadable body or bad parameter"),
                                   **_AUTH_ERRORS,
                                   "409": _err("the worker runs on the wall clock"),
                                   "413": _err("body too large"),
                                   "415": _err("unsupported content type"),
                                   "422": _err("not a time with a UTC offset"),
                                   "503": _err("busy (Retry-After), or ingest behind: "
                                               "nothing written")}}},
        "/preview": {
            "post": {"summary": "exact size and a sample of a draft, without going live",
                     "parameters": [{"name": "sample", "in": "query",
                                     "schema": {"type": "integer", "minimum": 0,
                                                "maximum": 1000}}],
                     "requestBody": _DEFINITION_BODY,
                     "security": _READ_SECURITY,
                     "responses": {"200": _json(_ref("Preview"), "preview"),
                                   "400": _err("unreadable body or bad parameter"),
                                   **_AUTH_ERRORS,
                                   "409": _err("the draft makes a reference cycle"),
                                   "413": _err("body too large"),
                                   "415": _err("unsupported content type"),
                                   "422": _err("invalid draft, or a body too deep / with too "
                                               "many values / with YAML anchors"),
                                   "503": _err("busy (Retry-After), out of time, or no "
                                               "partition held yet")}}},
        "/segments/{segment_id}/engagement": {"get": _read(
            "what the segment's current members did: interactions per UTC day and event type "
            "over the last N days, in total and per member (retained history)",
            _json(_ref("Engagement"), "interactions per day"),
            params=[_SEGMENT_ID, {"name": "days", "in": "query",
                                  "schema": {"type": "integer", "minimum": 1, "maximum": 90}}],
            extra={"400": _err("bad parameter (days: an integer from 1 to 90)"),
                   "503": _err("busy (Retry-After) or out of time")})},
        "/fields": {"get": _read("the field catalogue: contact and account attributes and "
                                 "event properties seen, with JSON types and counts",
                                 _json(_ref("Fields"), "fields seen"))},
        "/backtest": {
            "post": {"summary": "a draft's size per day in the past, from the retained "
                                "interaction history (docs/history.md)",
                     "parameters": [
                         {"name": "from", "in": "query", "schema": _STR,
                          "description": "first day (ISO date); with 'to' (default today)"},
                         {"name": "to", "in": "query", "schema": _STR},
                         {"name": "at", "in": "query", "schema": _STR,
                          "description": "one instant instead of days (ISO, with offset)"},
                         {"name": "sample", "in": "query",
                          "schema": {"type": "integer", "minimum": 0, "maximum": 1000}}],
                     "requestBody": _DEFINITION_BODY,
                     "security": _READ_SECURITY,
                     "responses": {"200": _json(_ref("Backtest"), "size per point in time"),
                                   "400": _err("unreadable body or bad parameter"),
                                   **_AUTH_ERRORS,
                                   "409": _err("the draft makes a reference cycle"),
                                   "413": _err("body too large"),
                                   "415": _err("unsupported content type"),
                                   "422": _err("invalid draft, or a point outside the "
                                               "retained history or in the future"),
                                   "503": _err("busy (Retry-After), out of time, or no "
                                               "partition held yet")}}},
    }


def openapi_document() -> dict[str, Any]:
    components: dict[str, Any] = dict(_SCHEMAS)
    for model, name in ((SegmentDefinition, "SegmentDefinition"), (StaticEdit, "StaticEdit")):
        schema = TypeAdapter(model).json_schema(mode="serialization", ref_template=_REF)
        components.update(schema.pop("$defs", {}))
        components[name] = schema
    # SegmentDefinition forbids extra properties: the accepted answer is a
    # copy of it with the warnings about fields never seen
    accepted = copy.deepcopy(components["SegmentDefinition"])
    accepted["properties"]["warnings"] = {"type": "array", "items": _STR}
    components["AcceptedSegment"] = accepted
    from app.api.insights_openapi import insights_paths, insights_schemas  # docs/insights.md
    components.update(insights_schemas(_obj, _ref, _COVERAGE))
    paths = {**_paths(), **insights_paths(_read, _json, _err, _ref, _SEGMENT_ID, _LOCAL,
                                          _NOT_FOUND)}
    from app.api.versions_openapi import versions_paths, versions_schemas  # console lists
    components.update(versions_schemas(_obj, _ref))
    paths.update(versions_paths(_read, _json, _err, _ref, _SEGMENT_ID, _NOT_FOUND))
    from app.api.event_types import openapi_parts  # docs/event-types.md
    event_type_paths, event_type_schemas = openapi_parts()
    components.update(event_type_schemas)
    paths.update(event_type_paths)
    return {
        "openapi": "3.1.0",
        "info": {"title": "segmentflow", "version": "1",
                 "description": "Live marketing segments on Kafka. Writes produce to the "
                                "source-of-truth topics and answer 202; reads come from the "
                                "evaluator's state on this worker. Errors: "
                                '{"error": {"code", "message", "details"}}.'},
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }


def response_schema(doc: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    """The JSON schema documented for a response, with the components
    attached so a JSON Schema validator can resolve ``$ref``s."""
    response = doc["paths"][path][method]["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    return {**schema, "components": doc["components"]}
