"""W3C trace context in Kafka headers (issue 16 item 7; docs/tracing.md).

Only the OpenTelemetry API: the SDK and exporter are set up by the app
(app/tracing.py) and reach the runtime and ingest as a ``Tracer``. A record
carries its context as the W3C ``traceparent`` header (and ``tracestate``
when there is one), header values in UTF-8 bytes as every Kafka client
writes them. Nothing here is called while tracing is off.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["TRACE_HEADERS", "context_from_headers", "merge_headers", "trace_headers"]

TRACEPARENT, TRACESTATE = "traceparent", "tracestate"
#: every header a trace context may occupy on a record we write: the W3C
#: names and the CloudEvents distributed-tracing extension's binary-mode ones
TRACE_HEADERS = frozenset((TRACEPARENT, TRACESTATE, "ce_" + TRACEPARENT, "ce_" + TRACESTATE))
_W3C = TraceContextTextMapPropagator()  # W3C only, whatever OTEL_PROPAGATORS says

Headers = list[tuple[str, bytes]]


def _pairs(headers: Any) -> Iterable[tuple[Any, Any]]:
    """aiokafka's sequence of (str, bytes), or Faust's dict or list."""
    if not headers:
        return ()
    return headers.items() if isinstance(headers, dict) else headers


def context_from_headers(headers: Any) -> Context | None:
    """The remote context a record's ``traceparent`` names (a CloudEvent's
    ``ce_traceparent`` when it has no ``traceparent``); None when it has none
    or an invalid one (a malformed header starts no trace of its own)."""
    carrier: dict[str, str] = {}
    extension: dict[str, str] = {}  # a binary-mode CloudEvent's ce_traceparent
    for key, value in _pairs(headers):
        name = key.decode("latin-1") if isinstance(key, bytes) else key
        if name in TRACE_HEADERS:
            raw = value if isinstance(value, bytes | bytearray) else str(value or "").encode()
            target = extension if name.startswith("ce_") else carrier
            target[name.removeprefix("ce_")] = bytes(raw).decode("latin-1")
    if TRACEPARENT not in carrier:
        carrier = extension  # the W3C headers win; the extension stands in for them
    if TRACEPARENT not in carrier:
        return None
    context = _W3C.extract(carrier)
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def trace_headers(span: trace.Span, *, cloudevents: bool = False) -> Headers:
    """Headers naming ``span`` as the parent of whatever continues the trace;
    ``cloudevents``: also the distributed-tracing extension's ``ce_traceparent``
    (and ``ce_tracestate``) of a binary-mode CloudEvent, with the same values,
    as that extension requires when both are present."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=trace.set_span_in_context(span))
    headers = [(name, value.encode()) for name, value in carrier.items()]
    if cloudevents:
        headers += [("ce_" + name, value) for name, value in headers]
    return headers


def merge_headers(headers: Headers, trace: Headers) -> Headers:
    """``headers`` with ``trace``'s: any trace header already there is
    replaced, so a record never carries two ``traceparent`` headers."""
    if not trace:
        return headers
    return [pair for pair in headers if pair[0] not in TRACE_HEADERS] + trace
