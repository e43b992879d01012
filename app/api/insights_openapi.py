"""The insights routes' part of the OpenAPI document (merged into
``app.api.openapi.openapi_document``; kept here so that the insights own
their documentation)."""

from __future__ import annotations

from typing import Any

__all__ = ["insights_paths", "insights_schemas"]

_STR = {"type": "string"}
_INT = {"type": "integer"}
_NULLABLE_INT = {"type": ["integer", "null"]}
_CAUSES = {"type": "object", "description": "cause kind (MembershipChange.cause.kind) -> "
           "counts", "additionalProperties": {
               "type": "object", "required": ["joined", "left"],
               "properties": {"joined": _INT, "left": _INT}}}


def insights_schemas(obj: Any, ref: Any, coverage: dict[str, Any]) -> dict[str, Any]:
    return {
        "InsightsPoint": obj({
            "start": {"type": "string", "description": "the bucket's first instant (UTC)"},
            "joins": _INT, "leaves": _INT,
            "size": {"type": "integer", "description": "members at the bucket's end"},
            "causes": _CAUSES}),
        "Insights": obj({
            "segment_id": _STR,
            "step": {"enum": ["hour", "day"]},
            "from": {"type": "string", "description": "the first bucket's start"},
            "to": {"type": "string", "description": "the last bucket's start"},
            "size": {"type": "integer", "description": "members after every change folded"},
            "joins": _INT, "leaves": _INT, "causes": _CAUSES,
            "points": {"type": "array", "items": ref("InsightsPoint")},
            "retention_days": _INT,
            "history_complete": {"type": "boolean", "description":
                                 "false when this worker's fold began after the topic's "
                                 "retention had deleted earlier changes: sizes then count only "
                                 "the changes folded (joins and leaves stay exact)"},
            "behind": {**_NULLABLE_INT, "description":
                       "membership changes on the topic not yet folded into the series, as "
                       "of the last fetch (null before the first)"}}),
        "Overlap": obj({
            "segments": {"type": "array", "items": _STR,
                         "description": "the segment, then the ones of 'with'"},
            "sizes": {"type": "array", "items": _INT},
            "matrix": {"type": "array", "items": {"type": "array", "items": _INT},
                       "description": "matrix[i][j]: contacts in both segments i and j"},
            **coverage}),
    }


def insights_paths(read: Any, json: Any, err: Any, ref: Any, segment_id: dict[str, Any],
                   local: dict[str, Any], not_found: dict[str, Any]) -> dict[str, Any]:
    moment = {"type": "string", "description": "ISO 8601 (UTC when no offset is given)"}
    return {
        "/segments/{segment_id}/insights": {
            "parameters": [segment_id],
            "get": read(
                "joins, leaves, causes and size per hour or day (the persisted series, "
                "kept at least 90 days)", json(ref("Insights"), "the series"),
                params=[{"name": "from", "in": "query", "schema": moment,
                         "description": "default: 'to' minus 47 hours (step=hour) or 29 "
                                        "days (step=day)"},
                        {"name": "to", "in": "query", "schema": moment,
                         "description": "default: the newest hour folded"},
                        {"name": "step", "in": "query", "schema": {"enum": ["hour", "day"]}}],
                extra={**not_found, "400": err("bad from, to or step, or too many points"),
                       "503": err("the series is still opening")})},
        "/segments/{segment_id}/overlap": {
            "parameters": [segment_id],
            "get": read(
                "contacts shared by the segment and each of 'with' (current members, exact)",
                json(ref("Overlap"), "the overlap matrix"),
                params=[{"name": "with", "in": "query", "schema": _STR,
                         "description": "comma-separated segment ids (at most 8)"}, local],
                extra={**not_found, "400": err("more than 8 segments in 'with'"),
                       "503": err("a peer did not answer")})},
    }
