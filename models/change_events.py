"""Membership changes as CloudEvents 1.0 (issue 16 item 1, the output side).

``SEGMENTFLOW_CHANGES_FORMAT`` chooses how a change is written to
``<prefix>.membership-changes`` (docs/cloudevents.md):

``native`` (default)
    the change's JSON (``models.changes.MembershipChange``), no headers.
``cloudevents-binary``
    CloudEvents Kafka protocol binding, binary content mode: the attributes
    in ``ce_*`` headers, ``content-type: application/json``, and the value
    is exactly the native change's JSON (the event's data).
``cloudevents-structured``
    structured content mode: ``content-type: application/cloudevents+json``
    and the value is the whole event as JSON, the native change as ``data``.

The key stays the contact id in every format (it is also the
``partitionkey`` extension, as the binding recommends). Attributes:

=================  ===========================================================
``type``           ``io.segmentflow.membership.joined`` / ``…left``
``source``         ``/segmentflow/<topic prefix>/segments/<segment_id>``
``subject``        the contact id
``id``             ``<segment_id>/<contact_id>/<sequence>``: the same change
                   replayed (same sequence) has the same id, so a consumer can
                   deduplicate on it; ids have no ``/`` (models/ids.py), so it
                   reads back unambiguously. After an erasure a returning
                   contact counts from sequence 1 again (see the sequence
                   filter): its ids repeat, as its sequences do.
``time``           the change's ``at`` (RFC 3339, as in the data)
``datacontenttype`` ``application/json``
=================  ===========================================================
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

import orjson

from models.changes import MembershipChange
from models.ids import ID_MAX_LENGTH

__all__ = [
    "CHANGES_FORMATS",
    "CHANGE_BINARY_HEADERS_SCHEMA",
    "CHANGE_STRUCTURED_SCHEMA",
    "CHANGE_TYPES",
    "DATA_CONTENT_TYPE",
    "STRUCTURED_CONTENT_TYPE",
    "ChangesFormat",
    "change_event_attributes",
    "change_event_id",
    "change_event_source",
    "encode_change",
    "native_change",
]

ChangesFormat = Literal["native", "cloudevents-binary", "cloudevents-structured"]
CHANGES_FORMATS: tuple[str, ...] = get_args(ChangesFormat)
SPECVERSION = "1.0"
TYPE_PREFIX = "io.segmentflow.membership."
CHANGE_TYPES: dict[str, str] = {"joined": TYPE_PREFIX + "joined", "left": TYPE_PREFIX + "left"}
DATA_CONTENT_TYPE = "application/json"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"  # as the SDK's JSON format writes it

Headers = list[tuple[str, bytes]]
_B_SPECVERSION = SPECVERSION.encode()
_B_DATA_CONTENT_TYPE = DATA_CONTENT_TYPE.encode()
_B_TYPES = {change: kind.encode() for change, kind in CHANGE_TYPES.items()}
_STRUCTURED_HEADERS: Headers = [("content-type", STRUCTURED_CONTENT_TYPE.encode())]


def change_event_id(segment_id: str, contact_id: str, sequence: int) -> str:
    """The CloudEvent id of a (segment, contact) pair's change number
    ``sequence``: a replay of that change (same sequence) has the same id."""
    return f"{segment_id}/{contact_id}/{sequence}"


def change_event_source(prefix: str, segment_id: str) -> str:
    """``/segmentflow/<prefix>/segments/<segment_id>`` (a URI reference:
    prefixes are Kafka topic characters, ids only use path characters)."""
    return f"/segmentflow/{prefix}/segments/{segment_id}"


def _rfc3339(at: datetime) -> str:
    text = at.isoformat()  # what pydantic writes as the change's "at", but for UTC's Z
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def change_event_attributes(change: MembershipChange, prefix: str) -> dict[str, str]:
    """The CloudEvent's context attributes (``partitionkey``: the record key)."""
    return {
        "specversion": SPECVERSION,
        "id": change_event_id(change.segment_id, change.contact_id, change.sequence),
        "source": change_event_source(prefix, change.segment_id),
        "type": CHANGE_TYPES[change.change],
        "subject": change.contact_id,
        "time": _rfc3339(change.at),
        "datacontenttype": DATA_CONTENT_TYPE,
        "partitionkey": change.contact_id,
    }


def encode_change(change: MembershipChange, fmt: str = "native", prefix: str = "segmentflow",
                  ) -> tuple[bytes, bytes, Headers]:
    """Key, value and headers of a change on the membership-changes topic."""
    data = change.__pydantic_serializer__.to_json(change)
    key = change.contact_id.encode()
    if fmt == "native":
        return key, data, []
    if fmt == "cloudevents-binary":
        event_id = change_event_id(change.segment_id, change.contact_id, change.sequence)
        return key, data, [
            ("ce_specversion", _B_SPECVERSION),
            ("ce_id", event_id.encode()),
            ("ce_source", change_event_source(prefix, change.segment_id).encode()),
            ("ce_type", _B_TYPES[change.change]),
            ("ce_subject", key),
            ("ce_time", _rfc3339(change.at).encode()),
            ("ce_partitionkey", key),
            ("content-type", _B_DATA_CONTENT_TYPE),
        ]
    if fmt == "cloudevents-structured":
        event: dict[str, Any] = change_event_attributes(change, prefix)
        event["data"] = orjson.Fragment(data)  # the native bytes, not encoded again
        return key, orjson.dumps(event), list(_STRUCTURED_HEADERS)
    raise ValueError(f"changes format {fmt!r} is not one of {', '.join(CHANGES_FORMATS)}")


def native_change(value: bytes) -> Any:
    """The change (decoded JSON) of a membership-changes record's value in
    any format: a structured CloudEvent's ``data``, else the value itself
    (native and binary mode write the change's JSON as the value)."""
    document = orjson.loads(value)
    if isinstance(document, dict) and "specversion" in document and "data" in document:
        return document["data"]
    return document


# JSON Schemas for the AsyncAPI document (models/asyncapi.py).
_ID_TEXT = {"type": "string", "minLength": 1}
_ATTRIBUTE_DESCRIPTIONS = {
    "id": "<segment_id>/<contact_id>/<sequence>: a replayed change has the same id "
          "(deduplicate on it; it repeats only after an erasure, as sequences do)",
    "source": "/segmentflow/<topic prefix>/segments/<segment_id>",
    "type": "io.segmentflow.membership.joined or io.segmentflow.membership.left",
    "subject": "the contact id",
    "time": "the change's at",
    "partitionkey": "the contact id (the record key)",
}
CHANGE_STRUCTURED_SCHEMA: dict[str, Any] = {
    "title": "MembershipChangeCloudEvent",
    "description": "A membership change as a CloudEvents 1.0 event in structured mode "
                   "(SEGMENTFLOW_CHANGES_FORMAT=cloudevents-structured; docs/cloudevents.md): "
                   "data is the native change.",
    "type": "object",
    "required": ["specversion", "id", "source", "type", "subject", "time", "datacontenttype",
                 "data"],
    "properties": {
        "specversion": {"const": SPECVERSION},
        "id": {**_ID_TEXT, "maxLength": 2 * ID_MAX_LENGTH + 24,
               "description": _ATTRIBUTE_DESCRIPTIONS["id"]},
        "source": {**_ID_TEXT, "pattern": "^/segmentflow/[^/]+/segments/[^/]+$",
                   "description": _ATTRIBUTE_DESCRIPTIONS["source"]},
        "type": {"enum": sorted(CHANGE_TYPES.values()),
                 "description": _ATTRIBUTE_DESCRIPTIONS["type"]},
        "subject": {**_ID_TEXT, "description": _ATTRIBUTE_DESCRIPTIONS["subject"]},
        "time": {"type": "string", "format": "date-time",
                 "description": _ATTRIBUTE_DESCRIPTIONS["time"]},
        "datacontenttype": {"const": DATA_CONTENT_TYPE},
        "partitionkey": {**_ID_TEXT, "description": _ATTRIBUTE_DESCRIPTIONS["partitionkey"]},
        "data": {"$ref": "#/components/schemas/MembershipChange"},
    },
    "additionalProperties": False,
}
CHANGE_BINARY_HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_subject", "ce_time",
                 "content-type"],
    "properties": {
        "ce_specversion": {"const": SPECVERSION},
        "ce_id": {**_ID_TEXT, "description": _ATTRIBUTE_DESCRIPTIONS["id"]},
        "ce_source": {**_ID_TEXT, "pattern": "^/segmentflow/[^/]+/segments/[^/]+$",
                      "description": _ATTRIBUTE_DESCRIPTIONS["source"]},
        "ce_type": {"enum": sorted(CHANGE_TYPES.values()),
                    "description": _ATTRIBUTE_DESCRIPTIONS["type"]},
        "ce_subject": {**_ID_TEXT, "description": _ATTRIBUTE_DESCRIPTIONS["subject"]},
        "ce_time": {"type": "string", "format": "date-time",
                    "description": _ATTRIBUTE_DESCRIPTIONS["time"]},
        "ce_partitionkey": {**_ID_TEXT, "description": _ATTRIBUTE_DESCRIPTIONS["partitionkey"]},
        "content-type": {"const": DATA_CONTENT_TYPE},
    },
}
