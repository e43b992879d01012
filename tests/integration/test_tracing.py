"""Tracing on the real broker (issue 16 item 7; docs/tracing.md): a contact
produced upstream with a known W3C ``traceparent`` header becomes a change
whose ``traceparent`` is in the same trace, and the worker's spans reach an
OTLP/HTTP receiver run by the test (aiohttp, protobuf decoded with
opentelemetry-proto): ``segmentflow.ingest`` child of the upstream span,
``segmentflow.evaluate`` child of the ingest span, the change's parent the
evaluate span. A second worker with the default settings, fed the same
records, writes no trace header anywhere and sends no span."""

from __future__ import annotations

import asyncio
import gzip
import uuid
from typing import Any

import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from app.client import Publisher
from app.settings import Settings
from models.segments import SegmentDefinition
from tests.integration.caught_up import wait_caught_up
from tests.integration.conftest import free_port
from tests.integration.helpers import wait_segment_applied
from tests.integration.test_cloudevents_output import read_all

pytestmark = pytest.mark.kafka

TRACE_ID = "5b8efff798038103d269b633813fc60c"
UPSTREAM_SPAN = "eee19b7ec3c1b174"
UPSTREAM = f"00-{TRACE_ID}-{UPSTREAM_SPAN}-01"


class OtlpReceiver:
    """POST /v1/traces: OTLP/HTTP protobuf, every span kept as a dict."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.changed = asyncio.Condition()
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    async def start(self) -> OtlpReceiver:
        app = web.Application()
        app.router.add_post("/v1/traces", self._export)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _export(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        for resource_spans in export.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append({
                        "name": span.name, "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(), "parent": span.parent_span_id.hex(),
                        "attributes": {a.key: _value(a.value) for a in span.attributes},
                        "resource": resource})
        async with self.changed:
            self.changed.notify_all()
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    async def until(self, done: Any, timeout: float = 30.0) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(done), timeout)


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def traceparent(record: Any) -> tuple[str, str] | None:
    """(trace id, parent span id) of a record's traceparent header."""
    headers = dict(record.headers)
    if "traceparent" not in headers:
        return None
    _, trace_id, span_id, _ = headers["traceparent"].decode().split("-")
    return trace_id, span_id


async def feed(config: Settings, worker: Any) -> None:
    """A segment, then c1 with the upstream trace context and c2 without."""
    async with Publisher(config) as publisher:
        await publisher.send(SegmentDefinition(id="paris", name="Paris",
                                               formula='city = "Paris"', status="live"))
        await publisher.flush()
    await wait_segment_applied(worker, "paris", version=1, partitions=config.partitions)
    producer = AIOKafkaProducer(bootstrap_servers=config.bootstrap_servers)
    await producer.start()
    try:
        for contact, headers in (("c1", [("traceparent", UPSTREAM.encode()),
                                         ("tracestate", b"vendor=1")]),
                                 ("c2", [])):
            value = b'{"contact_id": "%s", "attributes": {"city": "Paris"}}' % contact.encode()
            await producer.send_and_wait(config.topics.contacts, value, key=contact.encode(),
                                         headers=headers)
    finally:
        await producer.stop()
    await wait_caught_up(config)


async def test_a_trace_goes_from_the_upstream_record_to_the_change(
        settings, worker_factory, tmp_path) -> None:
    receiver = await OtlpReceiver().start()
    run = uuid.uuid4().hex[:8]
    configs = {
        "on": settings.model_copy(update={
            "topic_prefix": f"t-{run}-trace-on", "tracing": "otlp",
            "data_dir": tmp_path / "data-on", "web_port": free_port()}),
        "off": settings.model_copy(update={  # the defaults: tracing not configured
            "topic_prefix": f"t-{run}-trace-off", "data_dir": tmp_path / "data-off",
            "web_port": free_port()}),
    }
    assert configs["off"].tracing is None
    workers = {mode: worker_factory(config) for mode, config in configs.items()}
    workers["on"].extra_env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.url,
                               "OTEL_BSP_SCHEDULE_DELAY": "100"}
    try:
        for process in workers.values():
            process.start()
        await asyncio.gather(*(process.wait_ready() for process in workers.values()))
        await asyncio.gather(*(feed(configs[mode], workers[mode]) for mode in configs))

        # -- on: the change carries the upstream trace, through ingest and evaluate
        on = configs["on"]
        changes = {r.key.decode(): r for r in await read_all(on, on.topics.membership_changes)}
        assert set(changes) == {"c1", "c2"}
        c1_trace, c1_parent = traceparent(changes["c1"]) or ("", "")
        assert c1_trace == TRACE_ID
        c2_trace, _ = traceparent(changes["c2"]) or ("", "")
        assert c2_trace and c2_trace != TRACE_ID  # no upstream context: a trace of its own
        assert dict(changes["c1"].headers)["tracestate"] == b"vendor=1"
        logged = [r for r in await read_all(on, on.topics.evaluator_input)
                  if r.key == b"c1"]
        assert [traceparent(r)[0] for r in logged] == [TRACE_ID]  # type: ignore[index]

        def traced(name: str) -> list[dict[str, Any]]:
            return [s for s in receiver.spans if s["name"] == name
                    and s["trace_id"] == TRACE_ID]

        await receiver.until(lambda: traced("segmentflow.ingest")
                             and traced("segmentflow.evaluate"))
        [ingest] = traced("segmentflow.ingest")
        [evaluate] = traced("segmentflow.evaluate")
        assert ingest["parent"] == UPSTREAM_SPAN
        assert evaluate["parent"] == ingest["span_id"]
        assert c1_parent == evaluate["span_id"]  # the change continues the evaluate span
        assert ingest["attributes"]["segmentflow.contact_id"] == "c1"
        assert ingest["attributes"]["messaging.destination.name"] == on.topics.contacts
        assert evaluate["attributes"]["messaging.destination.name"] == on.topics.evaluator_input
        assert evaluate["attributes"]["segmentflow.changes"] == 1
        assert ingest["resource"]["service.name"] == "segmentflow"
        assert ingest["resource"]["segmentflow.topic_prefix"] == on.topic_prefix
        await receiver.until(lambda: any(
            s["trace_id"] == c2_trace and s["name"] == "segmentflow.ingest"
            and s["parent"] == "" for s in receiver.spans))  # c2's ingest span: a root

        # -- off (the default): the same inputs, no trace header, no span
        off = configs["off"]
        changes_off = await read_all(off, off.topics.membership_changes)
        assert sorted(r.key for r in changes_off) == [b"c1", b"c2"]
        assert all(not r.headers for r in changes_off)
        logged_off = await read_all(off, off.topics.evaluator_input)
        assert logged_off and all(
            [k for k, _ in r.headers] == ["segmentflow-source"] for r in logged_off)
        assert not [s for s in receiver.spans
                    if s["resource"].get("segmentflow.topic_prefix") == off.topic_prefix]
    finally:
        await receiver.stop()
