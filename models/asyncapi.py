"""The AsyncAPI 3.0 document of segmentflow's Kafka topics.

Every topic the worker declares (``app.faust_app.Topics``): the upstream
inputs, the internal evaluator-input log, the membership changes, the
compacted memberships snapshot and the dead letters, each with its Kafka
bindings (topic, partitions, cleanup policy, key) and its payload schema
generated from the pydantic models (``models.inputs``, ``models.segments``,
``models.changes``, ``models.records``), so the document cannot drift from
the code. ``schemas/asyncapi.yaml`` holds it for the default settings
(prefix ``segmentflow``, 8 partitions); a worker serves its own topic names
and partition count at ``/asyncapi.yaml`` and ``/asyncapi.json``.

Regenerate with ``make schemas`` (``.venv/bin/python -m models.asyncapi``);
tests/unit/test_asyncapi.py fails when the file and the models differ, and
``make asyncapi-check`` validates it with the AsyncAPI parser (npm,
tools/asyncapi). Payload schemas are in AsyncAPI's default schema format (a
JSON Schema draft 07 superset): pydantic's OpenAPI-style ``discriminator``
objects are left out (AsyncAPI's is a plain property name for
inheritance); the ``oneOf`` branches stay told apart by their required
``const`` tags (``op``, ``kind``, ``node``, ``window``), as pydantic needs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter

from models.change_events import (
    CHANGE_BINARY_HEADERS_SCHEMA,
    CHANGE_STRUCTURED_SCHEMA,
)
from models.change_events import STRUCTURED_CONTENT_TYPE as CHANGE_STRUCTURED_CONTENT_TYPE
from models.changes import MembershipChange
from models.cloudevents import BINARY_HEADERS_SCHEMA, STRUCTURED_CONTENT_TYPE, STRUCTURED_SCHEMA
from models.conditions import Condition
from models.event_types import EVENT_TYPE_NAME_PATTERN, EventTypeDeclaration
from models.ids import ID_MAX_LENGTH, ID_PATTERN
from models.inputs import AccountInput, ContactInput, Interaction, StaticEdit
from models.records import DeadLetter, EvaluatorInput, MembershipSnapshot
from models.segments import SegmentDefinition, SegmentDelete

__all__ = [
    "ASYNCAPI_PATH", "DEFAULT_PARTITIONS", "DEFAULT_PREFIX", "STATE_TOPICS", "TOPICS",
    "asyncapi_document",
    "default_topic_names", "main", "render_json", "render_yaml",
]

ASYNCAPI_PATH = Path(__file__).resolve().parent.parent / "schemas" / "asyncapi.yaml"
DEFAULT_PREFIX = "segmentflow"  # app.settings.Settings.topic_prefix
DEFAULT_PARTITIONS = 8  # app.settings.Settings.partitions
KAFKA_BINDING = "0.5.0"

_SCHEMAS = "#/components/schemas/"
_ID_BODY = ID_PATTERN.removeprefix("^").removesuffix("$")

# Payload contracts: component name -> model. Their nested models become
# components of their own (pydantic's $defs), shared between messages.
_CONTRACTS: dict[str, Any] = {
    "ContactInput": ContactInput,
    "AccountInput": AccountInput,
    "Interaction": Interaction,
    "StaticEdit": StaticEdit,
    "SegmentDefinition": SegmentDefinition,
    "SegmentDelete": SegmentDelete,
    "EvaluatorInput": EvaluatorInput,
    "MembershipChange": MembershipChange,
    "MembershipSnapshot": MembershipSnapshot,
    "DeadLetter": DeadLetter,
    "EventTypeDeclaration": EventTypeDeclaration,
}

# Kafka keys (UTF-8 strings).
_KEY_SCHEMAS: dict[str, Any] = {
    "Id": {"type": "string", "minLength": 1, "maxLength": ID_MAX_LENGTH, "pattern": ID_PATTERN,
           "description": "a contact, account or segment id (models/ids.py)"},
    "MembershipKey": {"type": "string", "pattern": f"^{_ID_BODY}/{_ID_BODY}$",
                      "description": "<segment_id>/<contact_id>"},
    "AnyKey": {"type": ["string", "null"],
               "description": "any key, or none"},
    "EventTypeName": {"type": "string", "pattern": EVENT_TYPE_NAME_PATTERN,
                      "description": "an event type's name (models/event_types.py)"},
}

# message id -> (component schema of the payload, key schema, title, summary)
_MESSAGES: dict[str, tuple[dict[str, Any], dict[str, Any], str, str]] = {
    "contactInput": (
        {"$ref": _SCHEMAS + "ContactInput"},
        {"$ref": _SCHEMAS + "Id", "description": "contact_id (recommended: keeps a contact's "
         "inputs in order; ingest re-keys by contact_id whatever the key)"},
        "Contact input", "Create, update (op upsert, the default) or erase (op delete) a contact",
    ),
    "accountInput": (
        {"$ref": _SCHEMAS + "AccountInput"},
        {"$ref": _SCHEMAS + "Id", "description": "account_id (recommended)"},
        "Account input", "Create, update or delete an account (firmographics: account.*)",
    ),
    "interaction": (
        {"$ref": _SCHEMAS + "Interaction"},
        {"$ref": _SCHEMAS + "Id", "description": "contact_id (recommended)"},
        "Interaction", "Something a contact did (email opened, purchase...), at occurred_at",
    ),
    "cloudEventStructured": (
        {"$ref": _SCHEMAS + "CloudEventInteraction"},
        {"$ref": _SCHEMAS + "AnyKey", "description": "the contact id (partitionkey) recommended"},
        "Interaction as a CloudEvent (structured mode)",
        "A CloudEvents 1.0 event, whole, as JSON: mapped to an interaction "
        "(docs/cloudevents.md)",
    ),
    "cloudEventBinary": (
        {"type": "object", "description": "the event's data: the interaction's properties"},
        {"$ref": _SCHEMAS + "AnyKey", "description": "the contact id (partitionkey) recommended"},
        "Interaction as a CloudEvent (binary mode)",
        "A CloudEvents 1.0 event: attributes in ce_* headers, the data as the value; mapped "
        "to an interaction (docs/cloudevents.md)",
    ),
    "staticEdit": (
        {"$ref": _SCHEMAS + "StaticEdit"},
        {"$ref": _SCHEMAS + "Id", "description": "contact_id (recommended)"},
        "Static edit", "Add a contact to, or remove it from, a segment's explicit list",
    ),
    "segmentDefinition": (
        {"$ref": _SCHEMAS + "SegmentDefinition"},
        {"$ref": _SCHEMAS + "Id", "description": "segment id"},
        "Segment definition", "Create or update a segment (every change bumps version)",
    ),
    "segmentDelete": (
        {"$ref": _SCHEMAS + "SegmentDelete"},
        {"$ref": _SCHEMAS + "Id", "description": "segment id"},
        "Segment delete", 'Delete a segment ({"op": "delete"}): every member leaves',
    ),
    "evaluatorInput": (
        {"$ref": _SCHEMAS + "EvaluatorInput"},
        {"type": "string", "description": "contact_id for contact inputs; the account or "
         "segment id for broadcasts (one record per partition); __tick__ for legacy clock ticks; "
         "__clock__ for clock advances"},
        "Evaluator input (internal)", "An input in its envelope, in log order per partition",
    ),
    "membershipChange": (
        {"$ref": _SCHEMAS + "MembershipChange"},
        {"$ref": _SCHEMAS + "Id", "description": "contact_id"},
        "Membership change", "joined / left for one (segment, contact); drop any sequence not "
        "greater than the last one applied for the pair (SEGMENTFLOW_CHANGES_FORMAT=native, "
        "the default)",
    ),
    "membershipChangeCloudEventBinary": (
        {"$ref": _SCHEMAS + "MembershipChange"},
        {"$ref": _SCHEMAS + "Id", "description": "contact_id (the partitionkey extension)"},
        "Membership change as a CloudEvent (binary mode)",
        "SEGMENTFLOW_CHANGES_FORMAT=cloudevents-binary: CloudEvents 1.0 attributes in ce_* "
        "headers (type io.segmentflow.membership.joined / .left, id "
        "<segment_id>/<contact_id>/<sequence>), the value the native change "
        "(docs/cloudevents.md)",
    ),
    "membershipChangeCloudEventStructured": (
        {"$ref": _SCHEMAS + "MembershipChangeCloudEvent"},
        {"$ref": _SCHEMAS + "Id", "description": "contact_id (the partitionkey extension)"},
        "Membership change as a CloudEvent (structured mode)",
        "SEGMENTFLOW_CHANGES_FORMAT=cloudevents-structured: the whole CloudEvents 1.0 event "
        "as JSON, the native change as its data (docs/cloudevents.md)",
    ),
    "membershipSnapshot": (
        {"$ref": _SCHEMAS + "MembershipSnapshot"},
        {"$ref": _SCHEMAS + "MembershipKey"},
        "Current member", "The contact is a member of the segment (since its last join)",
    ),
    "membershipTombstone": (
        {"type": "null", "description": "no value: compaction forgets the key"},
        {"$ref": _SCHEMAS + "MembershipKey"},
        "Tombstone", "The contact left the segment (or was erased)",
    ),
    "eventTypeDeclaration": (
        {"$ref": _SCHEMAS + "EventTypeDeclaration"},
        {"$ref": _SCHEMAS + "EventTypeName", "description": "the declaration's name"},
        "Event type declaration", "Declare (or change, with a higher version, or retire) an "
        "event type: its properties and their types, its time field (docs/event-types.md)",
    ),
    "eventTypeTombstone": (
        {"type": "null", "description": "no value: the built-in declaration of that name, if "
         "any, is in force again"},
        {"$ref": _SCHEMAS + "EventTypeName"},
        "Event type tombstone", "Forget the topic's declaration of an event type",
    ),
    "deadLetter": (
        {"$ref": _SCHEMAS + "DeadLetter"},
        {"$ref": _SCHEMAS + "AnyKey", "description": "the refused record's key"},
        "Dead letter", "An input that was not processed: where it came from, its bytes and why",
    ),
}

_SOURCE_HEADER = {
    "type": "object",
    "properties": {"segmentflow-source": {
        "type": "string", "pattern": r"^.+:[0-9]+:[0-9]+$",
        "description": "topic:partition:offset of the upstream input it forwards"}},
}


# W3C trace context (docs/tracing.md): optional headers, read and written
# only while tracing is on (SEGMENTFLOW_TRACING / OTEL_*; off by default).
_TRACEPARENT = {"type": "string", "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"}
_TRACE_HEADERS: dict[str, str] = {  # message id -> what its trace headers are
    **dict.fromkeys(
        ("contactInput", "accountInput", "interaction", "cloudEventStructured",
         "cloudEventBinary", "staticEdit", "segmentDefinition", "segmentDelete"),
        "the upstream span: ingest's span continues it (tracing on)"),
    "evaluatorInput": "ingest's span for the input (tracing on)",
    "membershipChange": "the evaluate span of the input that caused the change (tracing on, "
                        "the input traced; none for timers and backfills)",
    "membershipChangeCloudEventBinary": "the evaluate span of the input that caused the change "
                                        "(tracing on, the input traced); ce_traceparent and "
                                        "ce_tracestate carry the same values (CloudEvents "
                                        "distributed tracing extension)",
    "membershipChangeCloudEventStructured": "the evaluate span of the input that caused the "
                                            "change (tracing on, the input traced)",
    "deadLetter": "ingest's span for the refused input (tracing on)",
}


def _with_trace(headers: dict[str, Any] | None, parent: str, binary: bool) -> dict[str, Any]:
    """``headers`` (a headers schema, or none) with the optional trace headers."""
    traced = {"traceparent": {**_TRACEPARENT, "description": f"W3C traceparent: {parent}"},
              "tracestate": {"type": "string", "description": "W3C tracestate, when any"}}
    if binary:
        traced |= {"ce_" + name: value for name, value in traced.items()}
    schema = dict(headers) if headers is not None else {"type": "object"}
    schema["properties"] = {**schema.get("properties", {}), **traced}
    return schema


@dataclass(frozen=True)
class Topic:
    """One topic: ``name`` is its ``app.faust_app.Topics`` field (and
    ``app.settings.TopicNames`` attribute), the default topic name is
    ``<prefix>.<name with - for _>``."""

    name: str
    messages: tuple[str, ...]
    description: str
    actions: tuple[str, ...]  # what the worker does: receive, send
    compacted: bool = False
    upstream: bool = False
    partitions: int | None = None  # None: the deployment's partition count
    reader: str | None = None  # how the worker reads it, when not in a consumer group

    def default_address(self, prefix: str) -> str:
        return f"{prefix}.{self.name.replace('_', '-')}"


_UPSTREAM = (" Upstream publishes; the worker creates the topic with its partition count if it "
             "is missing (a name of its own: SEGMENTFLOW_{}_TOPIC).")

TOPICS: tuple[Topic, ...] = (
    Topic("contacts", ("contactInput",), "Contact upserts and erasures." +
          _UPSTREAM.format("CONTACTS"), ("receive",), upstream=True),
    Topic("accounts", ("accountInput",), "Account upserts and deletes." +
          _UPSTREAM.format("ACCOUNTS"), ("receive",), upstream=True),
    Topic("interactions", ("interaction", "cloudEventStructured", "cloudEventBinary"),
          "Interactions (events) of contacts, plain or as CloudEvents 1.0." +
          _UPSTREAM.format("INTERACTIONS"), ("receive",), upstream=True),
    Topic("segment_definitions", ("segmentDefinition", "segmentDelete"),
          "Segment definitions and deletes (the API and CLI write here too)." +
          _UPSTREAM.format("SEGMENT_DEFINITIONS"), ("receive",), upstream=True),
    Topic("static_edits", ("staticEdit",), "Explicit adds and removes (the API writes here "
          "too)." + _UPSTREAM.format("STATIC_EDITS"), ("receive",), upstream=True),
    Topic("evaluator_input", ("evaluatorInput",),
          "Internal: the one ordered log per partition the evaluator consumes. Ingest "
          "forwards every valid input here, keyed by contact_id; accounts and segment "
          "definitions go to every partition. Not a contract for other services.",
          ("send", "receive")),
    Topic("membership_changes", ("membershipChange", "membershipChangeCloudEventBinary",
                                 "membershipChangeCloudEventStructured"),
          "joined / left the moment membership changes, on the contact's partition. "
          "At-least-once: deduplicate on (segment_id, contact_id, sequence), or on the "
          "CloudEvent id. One message format per deployment, SEGMENTFLOW_CHANGES_FORMAT: "
          "native (default), cloudevents-binary or cloudevents-structured.", ("send",)),
    Topic("memberships", ("membershipSnapshot", "membershipTombstone"),
          "Compacted snapshot of the current members: read it from the start to "
          "bootstrap, then follow membership-changes.", ("send",), compacted=True),
    Topic("dead_letters", ("deadLetter",),
          "Inputs that were refused (invalid, too large, refused by the evaluator), with "
          "the reason; the worker never stops on bad input.", ("send",)),
    Topic("event_types", ("eventTypeDeclaration", "eventTypeTombstone"),
          "Event-type declarations, keyed by name (compacted, one partition): the types "
          "ingest accepts, on top of the built-in ones (docs/event-types.md). The API and "
          "CLI write here; operators may too.", ("send", "receive"), compacted=True,
          partitions=1, reader="Every worker reads the whole topic from its start (no "
                               "consumer group) and follows it."),
)


# Topics of app.faust_app.Topics left out on purpose: state changelogs (the
# evaluator's own encoding, restored by the worker; like Faust's table
# changelogs, not something another service reads).
STATE_TOPICS: tuple[str, ...] = ("evaluator_state",)


def default_topic_names(prefix: str = DEFAULT_PREFIX) -> dict[str, str]:
    return {topic.name: topic.default_address(prefix) for topic in TOPICS}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def _strip_discriminators(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_discriminators(v) for k, v in node.items()
                if not (k == "discriminator" and isinstance(v, dict))}
    if isinstance(node, list):
        return [_strip_discriminators(v) for v in node]
    return node


def _require_tags(schema: dict[str, Any]) -> None:
    """Tags with a default are optional in pydantic's schema, yet pydantic
    needs them to pick a union branch: require ``node`` / ``window`` /
    ``kind`` consts, and ``op`` wherever it is not the upsert default (a
    delete without ``op`` would read as an upsert or a definition)."""
    props = schema.get("properties", {})
    tags = [t for t in ("node", "window", "kind") if "const" in props.get(t, {})]
    if props.get("op", {}).get("const") not in (None, "upsert"):
        tags.append("op")
    if tags:
        schema["required"] = sorted(set(schema.get("required", [])) | set(tags))


def _hub(node: Any, unions: dict[str, list[Any]]) -> Any:
    """Replace every inline copy of a named union by a reference to it."""
    if isinstance(node, dict):
        for name, branches in unions.items():
            if node.get("oneOf") == branches and set(node) <= {"oneOf", "discriminator"}:
                return {"$ref": _SCHEMAS + name}
        return {k: _hub(v, unions) for k, v in node.items()}
    if isinstance(node, list):
        return [_hub(v, unions) for v in node]
    return node


def payload_schemas() -> dict[str, Any]:
    """components/schemas: the contracts and every model they nest.

    The condition union is a component of its own that the nodes reference
    (pydantic inlines it at every use): the recursive condition tree then
    has one hub instead of a dozen-way union repeated in each recursive
    node, which the AsyncAPI parser's circular-reference pass walks once per
    path (exponential: it had not finished after 10 minutes on the inlined
    form; 2 s with the hub).
    """
    unions = {"Condition": Condition}
    roots, definitions = TypeAdapter.json_schemas(
        [(name, "validation", TypeAdapter(model))
         for name, model in {**_CONTRACTS, **unions}.items()],
        ref_template=_SCHEMAS + "{model}",
    )
    components: dict[str, Any] = dict(definitions.get("$defs", {}))
    for (name, _mode), schema in roots.items():
        if schema.get("$ref") != _SCHEMAS + name:  # a union: a component of its own
            components[name] = {"title": name, **schema}
    branches = {name: components[name]["oneOf"] for name in unions}
    components = {name: (schema if name in unions else _hub(schema, branches))
                  for name, schema in components.items()}
    for schema in components.values():
        _require_tags(schema)
    components.update(_KEY_SCHEMAS)
    components["CloudEventInteraction"] = STRUCTURED_SCHEMA
    components["MembershipChangeCloudEvent"] = CHANGE_STRUCTURED_SCHEMA
    return _strip_discriminators({name: components[name] for name in sorted(components)})


def asyncapi_document(topics: Mapping[str, str] | None = None,
                      partitions: int = DEFAULT_PARTITIONS,
                      group_id: str = DEFAULT_PREFIX) -> dict[str, Any]:
    """The document for these topic names (``TopicNames`` attributes; the
    defaults for the prefix ``segmentflow`` when not given), partition count
    and the deployment's consumer group prefix (the topic prefix): ingest
    consumes in ``<prefix>-ingest``, the evaluator in ``<prefix>-evaluator``."""
    names = {**default_topic_names(), **(topics or {})}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic in TOPICS:
        address = names[topic.name]
        channels[topic.name] = {
            "address": address,
            "title": address,
            "description": topic.description,
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in topic.messages},
            "bindings": {"kafka": {
                "topic": address,
                "partitions": topic.partitions or partitions,
                "topicConfiguration": {
                    "cleanup.policy": ["compact"] if topic.compacted else ["delete"]},
                "bindingVersion": KAFKA_BINDING,
            }},
        }
        for action in topic.actions:
            operation: dict[str, Any] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{topic.name}"},
                "summary": (f"the worker consumes {address}" if action == "receive"
                            else f"the worker produces to {address}"),
                "messages": [{"$ref": f"#/channels/{topic.name}/messages/{m}"}
                             for m in topic.messages],
            }
            if action == "receive" and topic.reader:
                operation["description"] = topic.reader
            elif action == "receive" and topic.upstream:  # ingest's batch loop
                operation["bindings"] = {"kafka": {
                    "groupId": {"type": "string", "enum": [f"{group_id}-ingest"]},
                    "bindingVersion": KAFKA_BINDING}}
                operation["description"] = (
                    f"Consumer group {group_id}-ingest ({group_id}, the Faust app's, "
                    "with SEGMENTFLOW_INGEST=faust).")
            elif action == "receive":
                operation["description"] = f"Consumer group {group_id}-evaluator."
            operations[_camel(f"{action}_{topic.name}")] = operation
    messages: dict[str, Any] = {}
    for message_id, (payload, key, title, summary) in _MESSAGES.items():
        message: dict[str, Any] = {
            "name": message_id, "title": title, "summary": summary,
            "contentType": "application/json", "payload": payload,
            "bindings": {"kafka": {"key": key, "bindingVersion": KAFKA_BINDING}},
        }
        if message_id == "evaluatorInput":
            message["headers"] = _SOURCE_HEADER
        elif message_id == "cloudEventBinary":
            message["headers"] = BINARY_HEADERS_SCHEMA
        elif message_id == "cloudEventStructured":
            message["contentType"] = STRUCTURED_CONTENT_TYPE
        elif message_id == "membershipChangeCloudEventBinary":
            message["headers"] = CHANGE_BINARY_HEADERS_SCHEMA
        elif message_id == "membershipChangeCloudEventStructured":
            message["contentType"] = CHANGE_STRUCTURED_CONTENT_TYPE
        if message_id in _TRACE_HEADERS:
            binary = message_id == "membershipChangeCloudEventBinary"
            message["headers"] = _with_trace(message.get("headers"), _TRACE_HEADERS[message_id],
                                             binary)
        messages[message_id] = message
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "segmentflow topics",
            "version": "1",
            "description": (
                "Live marketing segments on Kafka. Upstream systems publish contacts, "
                "accounts, interactions, static edits and segment definitions (JSON); "
                "segmentflow publishes joined / left membership changes, a compacted "
                "snapshot of current members, and dead letters for refused input. Generated "
                "from the pydantic models (models/asyncapi.py)."),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": payload_schemas(), "messages": messages},
    }


def render_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def render_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the document for the default settings (or to the given path)."""
    target = Path(argv[0]) if argv else ASYNCAPI_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_yaml(asyncapi_document()), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
