"""Ingest's spans (issue 16 item 7; docs/tracing.md).

Used by agents/ingest.py only while tracing is on (the handler holds None
otherwise). For each upstream record of a batch: a ``segmentflow.ingest``
span, child of the context in the record's W3C ``traceparent`` /
``tracestate`` headers when it has a valid one, else the root of a new
trace; its ``traceparent`` goes on every record forwarded to the
evaluator's log (and on the dead letter of a refused input). The span
ends once the broker acknowledged the batch's forwards (or dead letters).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from runtime.trace_context import Headers, context_from_headers, trace_headers

__all__ = ["INGEST_SPAN", "IngestTracing"]

INGEST_SPAN = "segmentflow.ingest"
_CONTACT_KINDS = frozenset(("contact", "interaction", "static_edit"))


class IngestTracing:
    def __init__(self, tracer: trace.Tracer, *, group_id: str) -> None:
        self.tracer, self.group_id = tracer, group_id

    def begin(self, messages: Sequence[Any]) -> list[tuple[trace.Span, Headers]]:
        """A started span and the headers that continue it, per message
        (topic, partition, offset, key and headers: a Faust message or
        ingest's ``LoopMessage``)."""
        started: list[tuple[trace.Span, Headers]] = []
        for message in messages:
            attributes: dict[str, Any] = {
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.operation.name": "ingest",
                "messaging.destination.name": message.topic,
                "messaging.destination.partition.id": str(message.partition),
                "messaging.kafka.offset": message.offset,
                "messaging.consumer.group.name": self.group_id,
            }
            if message.key is not None:
                attributes["messaging.kafka.message.key"] = (
                    message.key.decode(errors="replace") if isinstance(message.key, bytes)
                    else str(message.key))
            span = self.tracer.start_span(
                INGEST_SPAN, context=context_from_headers(getattr(message, "headers", None)),
                kind=SpanKind.CONSUMER, attributes=attributes)
            started.append((span, trace_headers(span)))
        return started

    def end(self, started: Sequence[tuple[trace.Span, Headers]],
            outcomes: Sequence[tuple[bytes, int, str | None]]) -> None:
        """End each span with its input's outcome: (the forwarded envelope,
        records forwarded, None) or (b"", 0, why it was dead-lettered)."""
        for (span, _), (envelope, records, reason) in zip(started, outcomes, strict=True):
            if not span.is_recording():  # sampled out: its context travels, nothing else
                pass
            elif reason is None:
                _describe(span, envelope)
                span.set_attribute("segmentflow.forwarded_records", records)
            else:
                span.set_attribute("segmentflow.dead_letter.reason", reason[:300])
                span.set_status(Status(StatusCode.ERROR, "dead-lettered"))
            span.end()


def _describe(span: trace.Span, envelope: bytes) -> None:
    """The input's kind, contact id and interaction type, from the envelope
    forwarded (decoded again here: tracing on only)."""
    try:
        document = orjson.loads(envelope)
        kind, body = document["kind"], document["body"]
    except Exception:  # never fail ingest over a span's attributes
        return
    span.set_attribute("segmentflow.input.kind", kind)
    if kind in _CONTACT_KINDS and isinstance(body.get("contact_id"), str):
        span.set_attribute("segmentflow.contact_id", body["contact_id"])
    if kind == "interaction" and isinstance(body.get("type"), str):
        span.set_attribute("segmentflow.interaction.type", body["type"])
