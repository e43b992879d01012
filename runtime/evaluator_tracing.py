"""The batch evaluator's spans (issue 16 item 7; docs/tracing.md).

``BatchEvaluator`` calls :meth:`EvaluatorTracing.evaluated` once per batch,
and only when tracing is on (it holds None otherwise). For every input whose
record carries a ``traceparent`` (ingest writes one on every record it
forwards while tracing is on) it records a ``segmentflow.evaluate`` span,
child of that context, and returns the trace headers of every change the
input caused (the batch's per-input change boundaries,
:meth:`runtime.processor.Batch.change_sources`): the change records name
the evaluate span as their parent, so whoever consumes them (a journey
engine) continues the same trace. Changes of no input (wall-clock timers,
backfill chunks after the first) get no trace headers and no span.

An input is evaluated as part of its batch: the span's start and end are
the batch's (``segmentflow.batch.inputs`` says how many shared them).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from runtime.processor import Batch
from runtime.trace_context import Headers, context_from_headers, trace_headers

__all__ = ["EVALUATE_SPAN", "EvaluatorTracing"]

EVALUATE_SPAN = "segmentflow.evaluate"
_CONTACT_KINDS = frozenset(("contact", "interaction", "static_edit"))
#: span events (one per change) kept per evaluate span: a go-live's first
#: backfill chunk can change thousands of memberships within one input
MAX_CHANGE_EVENTS = 32


class EvaluatorTracing:
    def __init__(self, tracer: trace.Tracer, *, input_topic: str, group_id: str,
                 cloudevents_binary: bool = False) -> None:
        self.tracer = tracer
        self.cloudevents_binary = cloudevents_binary
        self._base = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.operation.name": "evaluate",
            "messaging.destination.name": input_topic,
            "messaging.consumer.group.name": group_id,
        }

    def evaluated(self, partition: int, records: Sequence[Any],
                  inputs: Sequence[tuple[str, dict[str, Any]]], batch: Batch,
                  seconds: float) -> list[Headers] | None:
        """Record the batch's evaluate spans (it took ``seconds``, ending
        now); the trace headers of each of ``batch.changes`` (parallel list),
        or None when no input of the batch carried a context."""
        ended = time.time_ns()
        started = ended - int(seconds * 1e9)
        spans: dict[int, trace.Span] = {}
        for index, record in enumerate(records):
            context = context_from_headers(record.headers)
            if context is None:
                continue
            kind, body = inputs[index]
            attributes = {
                **self._base,
                "messaging.destination.partition.id": str(partition),
                "messaging.kafka.offset": record.offset,
                "segmentflow.input.kind": kind,
                "segmentflow.batch.inputs": len(records),
            }
            if record.key is not None:
                attributes["messaging.kafka.message.key"] = record.key.decode(errors="replace")
            if kind in _CONTACT_KINDS and isinstance(body.get("contact_id"), str):
                attributes["segmentflow.contact_id"] = body["contact_id"]
            if kind == "interaction" and isinstance(body.get("type"), str):
                attributes["segmentflow.interaction.type"] = body["type"]
            spans[index] = self.tracer.start_span(
                EVALUATE_SPAN, context=context, kind=SpanKind.CONSUMER, start_time=started,
                attributes=attributes)
        if not spans:
            return None
        for refusal in batch.refused:
            span = spans.get(refusal.index)
            if span is not None:
                span.set_status(Status(StatusCode.ERROR, refusal.reason))
        headers: list[Headers] = [[] for _ in batch.changes]
        for index, start, end in batch.change_sources():
            span = spans.get(index) if index is not None else None
            if span is None:
                continue
            carried = trace_headers(span, cloudevents=self.cloudevents_binary)
            for position in range(start, end):
                headers[position] = carried
            if not span.is_recording():  # sampled out: the context travels, nothing else
                continue
            span.set_attribute("segmentflow.changes", end - start)
            for change in batch.changes[start:min(end, start + MAX_CHANGE_EVENTS)]:
                span.add_event("segmentflow.change", {
                    "segmentflow.segment_id": change.segment_id,
                    "segmentflow.change": change.change,
                    "segmentflow.sequence": change.sequence,
                }, timestamp=ended)
        for span in spans.values():
            span.end(end_time=ended)
        return headers
