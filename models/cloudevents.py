"""CloudEvents 1.0 on the interactions topic: a CloudEvent in structured mode
(the whole event as JSON in the record's value) or binary mode (attributes
in ``ce_*`` Kafka headers, the data in the value), per the CloudEvents Kafka
protocol binding, mapped to an interaction (docs/cloudevents.md):

==================  =====================================================
CloudEvent          interaction
==================  =====================================================
``type``            ``type``: the event type whose declaration lists it in
                    ``cloudevents_types``, else the CloudEvents type itself
                    when it is an event type name (``page_viewed``)
``subject``         ``contact_id`` (required)
``id``              ``event_id`` (duplicates are recognised by it)
``time``            ``occurred_at`` (or the type's declared time property)
``data``            ``properties`` (a JSON object, or absent)
==================  =====================================================

``specversion`` must be ``1.0``; ``source``, ``datacontenttype`` (JSON
only), ``dataschema`` and extension attributes are read and not kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "BINARY_HEADERS_SCHEMA",
    "STRUCTURED_CONTENT_TYPE",
    "STRUCTURED_SCHEMA",
    "CloudEventProblem",
    "binary_attributes",
    "from_binary",
    "interaction_from_cloudevent",
    "is_structured",
]

SPECVERSION = "1.0"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
_JSON_TYPES = ("application/json", "text/json")
_REQUIRED = ("id", "source", "type")


class CloudEventProblem(ValueError):
    """A CloudEvent that cannot be an interaction; the message says why."""


def _text(value: bytes | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("utf-8", errors="replace")


def _pairs(headers: Any) -> Iterable[tuple[str, Any]]:
    if not headers:
        return ()
    if isinstance(headers, Mapping):
        return headers.items()
    return headers


def binary_attributes(headers: Any) -> dict[str, Any] | None:
    """The CloudEvents attributes of a binary-mode record (``ce_*``
    headers, and ``content-type`` as ``datacontenttype``), or None when the
    record is not a binary-mode CloudEvent (no ``ce_specversion``)."""
    attributes: dict[str, Any] = {}
    content_type = None
    for key, value in _pairs(headers):
        name = _text(key) or ""
        if name.startswith("ce_"):
            attributes[name[3:]] = _text(value)
        elif name.lower() == "content-type":
            content_type = _text(value)
    if "specversion" not in attributes:
        return None
    if content_type is not None:
        attributes["datacontenttype"] = content_type
    return attributes


def is_structured(document: Any, headers: Any = None) -> bool:
    """A decoded record value that is a structured-mode CloudEvent."""
    if isinstance(document, dict) and "specversion" in document:
        return True
    return any((_text(k) or "").lower() == "content-type"
               and (_text(v) or "").startswith(STRUCTURED_CONTENT_TYPE)
               for k, v in _pairs(headers))


def from_binary(attributes: dict[str, Any], data: Any) -> dict[str, Any]:
    """The structured form of a binary-mode event (``data``: the decoded value)."""
    return {**attributes, "data": data} if data is not None else dict(attributes)


def _json_content(content_type: Any) -> bool:
    if content_type is None:
        return True
    base = str(content_type).split(";", 1)[0].strip().lower()
    return base in _JSON_TYPES or base.endswith("+json")


def interaction_from_cloudevent(event: Any,
                                resolve_type: Callable[[str], str | None]) -> dict[str, Any]:
    """The interaction (a JSON object, for ``models.inputs.Interaction``) a
    CloudEvent stands for. ``resolve_type`` maps a CloudEvents type to an
    event type name (None: unknown). Raises ``CloudEventProblem``."""
    if not isinstance(event, dict):
        raise CloudEventProblem("a structured CloudEvent must be a JSON object")
    version = event.get("specversion")
    if version != SPECVERSION:
        raise CloudEventProblem(f"CloudEvents specversion {str(version)[:20]!r} is not "
                                f"supported (only {SPECVERSION!r})")
    missing = [a for a in _REQUIRED if not event.get(a)]
    if missing:
        raise CloudEventProblem(f"CloudEvent without {', '.join(missing)} (required)")
    for attribute in ("id", "type", "subject", "time"):
        if attribute in event and not isinstance(event[attribute], str):
            raise CloudEventProblem(f"CloudEvent attribute {attribute} must be a string")
    subject = event.get("subject")
    if not subject:
        raise CloudEventProblem("CloudEvent without subject: the subject is the contact id")
    if "data_base64" in event or not _json_content(event.get("datacontenttype")):
        raise CloudEventProblem(
            f"CloudEvent data must be JSON (datacontenttype "
            f"{str(event.get('datacontenttype', 'with data_base64'))[:60]!r})")
    data = event.get("data")
    if data is not None and not isinstance(data, dict):
        raise CloudEventProblem("CloudEvent data must be a JSON object (it becomes the "
                                "interaction's properties)")
    kind = resolve_type(event["type"])
    if kind is None:
        raise CloudEventProblem(f"CloudEvents type {event['type'][:120]!r} is not an event "
                                "type name")
    interaction: dict[str, Any] = {"event_id": event["id"], "contact_id": subject,
                                   "type": kind, "properties": data or {}}
    if event.get("time"):
        interaction["occurred_at"] = event["time"]
    return interaction


# JSON Schemas of the two modes, for the AsyncAPI document (models/asyncapi.py).
_TEXT = {"type": "string", "minLength": 1}
STRUCTURED_SCHEMA: dict[str, Any] = {
    "title": "CloudEventInteraction",
    "description": "A CloudEvents 1.0 event in structured mode standing for an interaction "
                   "(docs/cloudevents.md): subject is the contact id, id the event id, time "
                   "the event time, data the properties, type an event type or a CloudEvents "
                   "type listed in a declaration's cloudevents_types.",
    "type": "object",
    "required": ["specversion", "id", "source", "type", "subject"],
    "properties": {
        "specversion": {"const": SPECVERSION},
        "id": {**_TEXT, "description": "the interaction's event_id"},
        "source": {**_TEXT, "description": "read, not kept"},
        "type": {**_TEXT, "description": "an event type, or a CloudEvents type a declaration "
                 "lists in cloudevents_types"},
        "subject": {**_TEXT, "description": "the contact id"},
        "time": {"type": "string", "format": "date-time",
                 "description": "occurred_at (else the type's declared time property)"},
        "datacontenttype": {"type": "string", "description": "JSON (application/json, "
                            "text/json or …+json) when given"},
        "dataschema": {"type": "string"},
        "data": {"type": "object", "description": "the interaction's properties"},
    },
}
BINARY_HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_subject"],
    "properties": {
        "ce_specversion": {"const": SPECVERSION},
        "ce_id": {**_TEXT, "description": "the interaction's event_id"},
        "ce_source": {**_TEXT, "description": "read, not kept"},
        "ce_type": {**_TEXT, "description": "an event type, or a CloudEvents type a "
                    "declaration lists in cloudevents_types"},
        "ce_subject": {**_TEXT, "description": "the contact id"},
        "ce_time": {"type": "string", "format": "date-time", "description": "occurred_at"},
        "content-type": {"type": "string", "description": "the datacontenttype (JSON)"},
    },
}
