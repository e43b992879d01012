"""Whether the worker traces, and the OpenTelemetry SDK when it does
(issue 16 item 7; docs/tracing.md).

Off by default. On with ``SEGMENTFLOW_TRACING=otlp``; off with
``SEGMENTFLOW_TRACING=off`` whatever else is set. Unset, the standard
variables decide, as for any OpenTelemetry-instrumented service: on when
``OTEL_TRACES_EXPORTER`` is ``otlp`` or an OTLP endpoint is set
(``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``),
unless ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``.

When on: a TracerProvider of its own (the global one is left alone) with
a ``BatchSpanProcessor`` and the OTLP/HTTP protobuf exporter, which read the
standard variables themselves (endpoint, headers, timeout, batch delay,
sampler: ``OTEL_TRACES_SAMPLER``, parent-based always-on by default, so an
upstream ``traceparent``'s sampled flag is honoured). The service name is
``OTEL_SERVICE_NAME`` or ``segmentflow``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agents.ingest_tracing import IngestTracing
from app.settings import Settings
from runtime.evaluator_tracing import EvaluatorTracing

__all__ = ["Tracing", "start_tracing", "tracing_wanted"]

log = logging.getLogger(__name__)


def tracing_wanted(settings: Settings, environ: Mapping[str, str] = os.environ) -> bool:
    """The decision above, from the settings and the environment."""
    if settings.tracing is not None:
        return settings.tracing == "otlp"
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return "otlp" in {name.strip() for name in exporter.split(",")}
    return bool(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
                or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip())


@dataclass
class Tracing:
    """The worker's tracing: what ingest and the evaluator are given."""

    provider: Any  # opentelemetry.sdk.trace.TracerProvider
    ingest: IngestTracing
    evaluator: EvaluatorTracing

    def flush(self) -> None:
        """Export what is queued (the worker's shutdown: at most 5 s). The
        provider itself shuts down at process exit, so that the spans of
        the last batches, ended while the evaluator stops, leave too."""
        self.provider.force_flush(timeout_millis=5000)


def start_tracing(settings: Settings, *, ingest_group: str, evaluator_group: str,
                  environ: Mapping[str, str] = os.environ) -> Tracing | None:
    """The worker's tracing, or None when it is off (nothing is imported
    from the SDK then)."""
    if not tracing_wanted(settings, environ):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({
        "service.name": environ.get("OTEL_SERVICE_NAME") or "segmentflow",
        "segmentflow.topic_prefix": settings.topic_prefix,
    })
    provider = TracerProvider(resource=resource, shutdown_on_exit=True)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    tracer = provider.get_tracer("segmentflow")
    log.info("tracing on: spans exported over OTLP/HTTP (docs/tracing.md)")
    return Tracing(
        provider,
        IngestTracing(tracer, group_id=ingest_group),
        EvaluatorTracing(tracer, input_topic=settings.topics.evaluator_input,
                         group_id=evaluator_group,
                         cloudevents_binary=settings.changes_format == "cloudevents-binary"))
