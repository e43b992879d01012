"""Tracing without a broker (issue 16 item 7; docs/tracing.md): per-input
change boundaries, the evaluator's and ingest's spans and headers with an
in-memory span exporter, when tracing is on; and what happens when it is
off (the real broker and an OTLP receiver: tests/integration/test_tracing.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agents.ingest as ingest
from agents.ingest_tracing import INGEST_SPAN, IngestTracing
from app.settings import Settings
from app.tracing import start_tracing, tracing_wanted
from models.change_events import encode_change
from runtime.driver import Driver
from runtime.evaluator_tracing import EVALUATE_SPAN, EvaluatorTracing
from runtime.processor import Batch, ProcessorConfig
from runtime.trace_context import context_from_headers, merge_headers
from tests.unit.test_cloudevents_output import JOINED, LEFT, _Producer, unstarted_loop
from tests.unit.test_ingest_batches import FakeApp, Rig, contact, event

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
UPSTREAM = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def spans_and_tracer() -> tuple[InMemorySpanExporter, Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter, provider.get_tracer("test")


def parent_of(headers: list[tuple[str, bytes]]) -> tuple[str, str]:
    """(trace id, parent span id) of a traceparent header."""
    _, trace_id, span_id, _ = dict(headers)["traceparent"].decode().split("-")
    return trace_id, span_id


# -- per-input change boundaries ------------------------------------------------------


def test_every_change_maps_to_the_input_that_caused_it() -> None:
    """The driver (the worker's commit protocol without a broker) records,
    for each change, the input log offset of its cause: an input's own
    changes, a segment's cascade and a go-live's first backfill chunk are
    that input's; a window expiring on the wall clock is no input's."""
    now = [T0]
    driver = Driver(1, config=ProcessorConfig(partitions=1), batch_size=10,
                    wall=lambda: now[0])
    try:
        driver.send("segment", {"id": "paris", "name": "paris", "status": "live",
                                "formula": 'city = "Paris"'})                       # 0
        driver.send("segment", {"id": "paris-openers", "name": "po", "status": "live",
                                "formula": 'in segment "paris" and performed email_opened '
                                           "within last 1 days"})                     # 1
        driver.send("contact", {"contact_id": "a", "attributes": {"city": "Paris"}})  # 2
        driver.send("contact", {"contact_id": "b", "attributes": {"city": "Lyon"}})   # 3
        driver.send("interaction", {"event_id": "e1", "contact_id": "a",             # 4
                                    "type": "email_opened", "properties": {},
                                    "occurred_at": T0.isoformat()})
        driver.send("contact", {"contact_id": "b", "attributes": {"city": "Paris"}})  # 5
        driver.send("segment", {"id": "all", "name": "all", "status": "live",         # 6
                                "formula": 'city = "Paris" or city = "Lyon"'})
        driver.run()
        now[0] = T0 + timedelta(days=2)  # a's open leaves the window: a timer
        driver.run(idle_rounds=1)
        caused = [(c.segment_id, c.contact_id, c.change, source)
                  for c, source in zip(driver.outputs, driver.sources, strict=True)]
        assert caused == [
            ("paris", "a", "joined", (0, 2)),
            ("paris-openers", "a", "joined", (0, 4)),
            ("paris", "b", "joined", (0, 5)),
            ("all", "a", "joined", (0, 6)),  # the go-live's first backfill chunk
            ("all", "b", "joined", (0, 6)),
            ("paris-openers", "a", "left", None),  # the window expired: no input
        ]
    finally:
        driver.close()


def test_change_sources_cover_every_change_once() -> None:
    changes = [JOINED, LEFT, JOINED, LEFT]
    batch = Batch(seq=1, changes=changes, emitted_by=[0, 3], emitted_until=[1, 3])
    assert batch.change_sources() == [(0, 0, 1), (3, 1, 3), (None, 3, 4)]
    assert Batch(seq=1).change_sources() == []


# -- the evaluator's spans --------------------------------------------------------------


def record(offset: int, headers: list[tuple[str, bytes]], key: bytes = b"a") -> Any:
    return SimpleNamespace(offset=offset, key=key, headers=headers)


INPUTS = [("contact", {"contact_id": "a"}), ("interaction", {"contact_id": "b", "type": "x"}),
          ("contact", {"contact_id": "c"})]


@pytest.mark.parametrize("binary", [False, True])
def test_evaluate_spans_continue_the_carried_context_and_name_the_changes_parent(
        binary: bool) -> None:
    exporter, tracer = spans_and_tracer()
    tracing = EvaluatorTracing(tracer, input_topic="t.evaluator-input", group_id="t-evaluator",
                               cloudevents_binary=binary)
    other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    records = [record(10, [("traceparent", UPSTREAM.encode())]),
               record(11, [("segmentflow-source", b"t.x:0:1")]),  # no context: no span
               record(12, [("traceparent", other.encode()), ("tracestate", b"k=v")])]
    # input 0 caused two changes, input 2 one, and a timer the last one
    batch = Batch(seq=1, changes=[JOINED, LEFT, JOINED, LEFT], emitted_by=[0, 2],
                  emitted_until=[2, 3])
    headers = tracing.evaluated(3, records, INPUTS, batch, 0.002)
    assert headers is not None and len(headers) == 4
    spans = {s.attributes["messaging.kafka.offset"]: s for s in exporter.get_finished_spans()}
    assert sorted(spans) == [10, 12] and all(s.name == EVALUATE_SPAN for s in spans.values())
    first, third = spans[10], spans[12]
    assert f"{first.context.trace_id:032x}" == TRACE_ID
    assert f"{first.parent.span_id:016x}" == "00f067aa0ba902b7"  # the carried one
    assert first.attributes["segmentflow.contact_id"] == "a"
    assert first.attributes["messaging.destination.partition.id"] == "3"
    assert first.attributes["segmentflow.changes"] == 2
    assert [e.attributes["segmentflow.change"] for e in first.events] == ["joined", "left"]
    assert first.end_time - first.start_time == pytest.approx(2_000_000, rel=0.01)
    assert headers[0] == headers[1]
    assert parent_of(headers[0]) == (TRACE_ID, f"{first.context.span_id:016x}")
    assert parent_of(headers[2]) == (f"{third.context.trace_id:032x}",
                                     f"{third.context.span_id:016x}")
    assert dict(headers[2])["tracestate"] == b"k=v"
    assert headers[3] == []  # the timer's change: no trace
    if binary:  # the CloudEvents distributed tracing extension, same values
        assert dict(headers[0])["ce_traceparent"] == dict(headers[0])["traceparent"]
    else:
        assert all(not k.startswith("ce_") for h in headers for k, _ in h)


def test_a_batch_without_carried_context_records_nothing() -> None:
    exporter, tracer = spans_and_tracer()
    tracing = EvaluatorTracing(tracer, input_topic="i", group_id="g")
    batch = Batch(seq=1, changes=[JOINED], emitted_by=[0], emitted_until=[1])
    malformed = [("traceparent", b"00-zz-00f067aa0ba902b7-01")]
    assert tracing.evaluated(0, [record(1, malformed)], INPUTS[:1], batch, 0.001) is None
    assert exporter.get_finished_spans() == ()


def test_trace_headers_merge_with_cloudevents_headers_without_clashing() -> None:
    _, _, binary = encode_change(JOINED, "cloudevents-binary", "shop")
    trace = [("traceparent", UPSTREAM.encode()), ("ce_traceparent", UPSTREAM.encode())]
    stale = [*binary, ("traceparent", b"00-old")]
    merged = merge_headers(stale, trace)
    names = [k for k, _ in merged]
    assert names.count("traceparent") == 1 and names.count("ce_traceparent") == 1
    assert merged[:len(binary)] == binary and dict(merged)["traceparent"] == UPSTREAM.encode()
    assert merge_headers(binary, []) is binary


@pytest.mark.parametrize("mode", ["native", "cloudevents-binary", "cloudevents-structured"])
async def test_the_batch_loop_sends_each_change_with_its_trace_headers(
        mode: str, tmp_path: Path) -> None:
    loop = unstarted_loop(mode, tmp_path)
    producer = _Producer()
    try:
        loop.producer = producer  # type: ignore[assignment]
        trace = [("traceparent", UPSTREAM.encode())]
        await loop._send_outputs(2, Batch(seq=1, changes=[JOINED, LEFT]), [trace, []])
        sent = [r for topic, _, records in producer.sent
                if topic == "shop.membership-changes" for r in records]
        base = [encode_change(c, mode, "shop")[2] for c in (JOINED, LEFT)]
        assert [r["headers"] for r in sent] == [base[0] + trace, base[1]]
        snapshots = [r for topic, _, records in producer.sent if topic == "shop.memberships"
                     for r in records]
        assert all(r["headers"] == [] for r in snapshots)
    finally:
        await producer.real.stop()
        loop._store.close()


# -- ingest's spans ----------------------------------------------------------------------


def traced_rig(monkeypatch: pytest.MonkeyPatch, tracer: Any) -> Rig:
    rig = Rig(monkeypatch)
    rig.app = FakeApp()  # registered again, with tracing
    ingest.register_ingest(rig.app, rig.topics, rig.settings, rig.metrics,  # type: ignore[arg-type]
                           tracing=IngestTracing(tracer, group_id="t-ingest"))
    return rig


def with_headers(value: bytes | None, offset: int, headers: Any) -> Any:
    item = event(value, offset)
    item.message.headers = headers
    return item


async def test_ingest_continues_upstream_traces_and_forwards_the_context(
        monkeypatch: pytest.MonkeyPatch) -> None:
    exporter, tracer = spans_and_tracer()
    rig = traced_rig(monkeypatch, tracer)
    await rig.run([
        with_headers(contact("c1"), 0, [("traceparent", UPSTREAM.encode())]),
        with_headers(contact("c2"), 1, None),  # no context: a root span
        with_headers(b"not json", 2, {"traceparent": UPSTREAM.encode()}),  # Faust's dict
    ])
    spans = {s.attributes["messaging.kafka.offset"]: s for s in exporter.get_finished_spans()}
    assert sorted(spans) == [0, 1, 2] and {s.name for s in spans.values()} == {INGEST_SPAN}
    assert f"{spans[0].context.trace_id:032x}" == TRACE_ID
    assert f"{spans[0].parent.span_id:016x}" == "00f067aa0ba902b7"
    assert spans[1].parent is None and f"{spans[1].context.trace_id:032x}" != TRACE_ID
    assert spans[0].attributes["segmentflow.contact_id"] == "c1"
    assert spans[0].attributes["segmentflow.input.kind"] == "contact"
    assert spans[0].attributes["messaging.destination.name"] == "t.contacts"
    assert spans[2].status.status_code.name == "ERROR"  # dead-lettered
    assert rig.producer is not None
    forwarded = {int(dict(r["headers"])[ingest.SOURCE_HEADER].split(b":")[-1]): r["headers"]
                 for r in rig.producer.acked if r["topic"] == "t.evaluator-input"}
    for offset in (0, 1):
        span = spans[offset]
        assert parent_of(forwarded[offset]) == (f"{span.context.trace_id:032x}",
                                                f"{span.context.span_id:016x}")
    letter = next(r for r in rig.producer.acked if r["topic"] == "t.dead-letters")
    assert parent_of(letter["headers"])[1] == f"{spans[2].context.span_id:016x}"


async def test_ingest_with_tracing_off_reads_and_writes_no_trace_header(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(monkeypatch)  # registered without tracing: the default
    await rig.run([with_headers(contact("c1"), 0, [("traceparent", UPSTREAM.encode())])])
    assert rig.producer is not None
    [forwarded] = [r for r in rig.producer.acked if r["topic"] == "t.evaluator-input"]
    assert [k for k, _ in forwarded["headers"]] == [ingest.SOURCE_HEADER]


def test_context_from_headers_reads_every_header_shape() -> None:
    for headers in ([("traceparent", UPSTREAM.encode())], {"traceparent": UPSTREAM.encode()},
                    ((b"traceparent", UPSTREAM.encode()),), [("traceparent", UPSTREAM)]):
        assert context_from_headers(headers) is not None, headers
    for headers in (None, [], [("traceparent", b"garbage")], [("other", UPSTREAM.encode())]):
        assert context_from_headers(headers) is None, headers
    # a binary-mode CloudEvent's distributed tracing extension stands in for
    # the W3C header, which wins when both are there
    other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    for headers, trace_id in (([("ce_traceparent", UPSTREAM.encode())], TRACE_ID),
                              ([("ce_traceparent", other.encode()),
                                ("traceparent", UPSTREAM.encode())], TRACE_ID),
                              ([("ce_traceparent", other.encode())], other[3:35])):
        context = context_from_headers(headers)
        assert context is not None
        span_context = trace.get_current_span(context).get_span_context()
        assert f"{span_context.trace_id:032x}" == trace_id


# -- on or off ----------------------------------------------------------------------------


@pytest.mark.parametrize(("setting", "environ", "on"), [
    (None, {}, False),  # the default: off
    ("otlp", {}, True),
    ("off", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
    (None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    (None, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
    (None, {"OTEL_TRACES_EXPORTER": "otlp"}, True),
    (None, {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, False),
    (None, {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
])
def test_tracing_is_off_unless_configured(setting: str | None, environ: dict[str, str],
                                          on: bool) -> None:
    settings = Settings(tracing=setting)
    assert tracing_wanted(settings, environ) is on
    tracing = start_tracing(settings, ingest_group="i", evaluator_group="e", environ=environ)
    assert (tracing is not None) is on
    if tracing is not None:
        assert tracing.evaluator.cloudevents_binary is False
        tracing.flush()
        tracing.provider.shutdown()


def test_the_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGMENTFLOW_TRACING", raising=False)
    assert Settings().tracing is None
    monkeypatch.setenv("SEGMENTFLOW_TRACING", "otlp")
    assert Settings().tracing == "otlp"



def test_a_sampled_out_trace_still_travels_to_the_changes() -> None:
    """An upstream context whose sampled flag is 0 (the default sampler is
    parent-based): no span is recorded, the context still reaches the change."""
    exporter, tracer = spans_and_tracer()
    tracing = EvaluatorTracing(tracer, input_topic="i", group_id="g")
    unsampled = UPSTREAM[:-2] + "00"
    batch = Batch(seq=1, changes=[JOINED], emitted_by=[0], emitted_until=[1])
    headers = tracing.evaluated(0, [record(1, [("traceparent", unsampled.encode())])],
                                INPUTS[:1], batch, 0.001)
    assert headers is not None
    value = dict(headers[0])["traceparent"].decode()
    assert value.startswith(f"00-{TRACE_ID}-") and value.endswith("-00")
    assert exporter.get_finished_spans() == ()
