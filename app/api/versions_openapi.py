"""The OpenAPI part of ``GET /segments/{id}/versions`` (app/api/versions.py)
and ``GET /insights/recent`` (app/api/recent.py), merged into
``app.api.openapi.openapi_document``."""

from __future__ import annotations

from typing import Any

__all__ = ["versions_paths", "versions_schemas"]

_STR = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_NULLABLE_STR = {"type": ["string", "null"]}
_ANY = {"description": "the field's value (null when absent)"}


def versions_schemas(obj: Any, ref: Any) -> dict[str, Any]:
    return {
        "SegmentVersion": obj({
            "op": {"enum": ["definition", "delete"]},
            "version": {"type": ["integer", "null"], "description": "null for a delete"},
            "written_at": {**_NULLABLE_STR, "description": "the record's time on the topic"},
            "updated_at": _NULLABLE_STR, "created_at": _NULLABLE_STR,
            "name": _NULLABLE_STR, "description": _NULLABLE_STR, "kind": _NULLABLE_STR,
            "status": _NULLABLE_STR, "formula": _NULLABLE_STR, "timezone": _NULLABLE_STR,
            "include": {"type": "array", "items": _STR},
            "exclude": {"type": "array", "items": _STR},
            "partition": _INT, "offset": _INT,
            "changes": {"type": "array", "description": "what changed from the version "
                        "before (op: create / delete)", "items": obj({
                            "field": _STR, "from": _ANY, "to": _ANY})},
            "in_force": {**_BOOL, "description": "the version the evaluators apply now"},
            "refused_reason": {**_NULLABLE_STR,
                               "description": "why the evaluators refused this version"}},
            required=["op", "version", "written_at", "changes", "in_force"]),
        "SegmentVersions": obj({
            "segment_id": _STR,
            "versions": {"type": "array", "items": ref("SegmentVersion"),
                         "description": "newest first"},
            "total": _INT,
            "version_in_force": {"type": ["integer", "null"]},
            "history_complete": {**_BOOL, "description": "false when the topic's retention "
                                 "deleted older records (or more than 500 versions)"},
            "source": {**_STR, "description": "the segment-definitions topic read"}}),
        "RecentActivity": obj({
            "now": {**_STR, "description": "the service's clock"},
            "hour_from": {**_STR, "description": "start of the current UTC hour"},
            "day_from": {**_STR, "description": "start of the hour 23 hours before"},
            "segments": {"type": "array", "items": obj({
                "segment_id": _STR, "joins_hour": _INT, "leaves_hour": _INT,
                "joins_day": _INT, "leaves_day": _INT})},
            "behind": {"type": ["integer", "null"], "description":
                       "membership changes not yet folded into the series"}}),
    }


def versions_paths(read: Any, json: Any, err: Any, ref: Any, segment_id: dict[str, Any],
                   not_found: dict[str, Any]) -> dict[str, Any]:
    return {
        "/segments/{segment_id}/versions": {
            "parameters": [segment_id],
            "get": read(
                "the segment's versions (what changed, when), read from the "
                "segment-definitions topic", json(ref("SegmentVersions"), "the history"),
                params=[{"name": "limit", "in": "query",
                         "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                         "description": "versions returned, newest first (default 50)"}],
                extra={**not_found, "400": err("bad limit"),
                       "503": err("the topic could not be read in time")})},
        "/insights/recent": {
            "get": read(
                "every segment's joins and leaves in the current UTC hour and the last 24 "
                "(the insights series)", json(ref("RecentActivity"), "the counts"),
                extra={"503": err("the series is still opening")})},
    }
