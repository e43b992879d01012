"""Operational endpoints: health, readiness, Prometheus metrics, OpenAPI, AsyncAPI."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust
from aiohttp import web
from faust.web import Request, Response, View

from app.api.context import ApiContext
from app.api.errors import json_response
from app.api.openapi import openapi_document
from app.metrics import CONTENT_TYPE, Metrics
from app.settings import Settings
from app.topic_setup import topics_ready
from models.asyncapi import TOPICS, asyncapi_document, render_yaml

__all__ = ["asyncapi_for", "readiness", "register_ingest_ops", "register_ops"]


def asyncapi_for(settings: Settings) -> dict[str, Any]:
    """The AsyncAPI document of this worker's topics: its names (prefix and
    upstream overrides), partition count and consumer group (the app id)."""
    names = {topic.name: getattr(settings.topics, topic.name) for topic in TOPICS}
    return asyncapi_document(names, partitions=settings.partitions,
                             group_id=settings.topic_prefix)


def readiness(app: faust.App, held: set[int]) -> dict[str, Any]:
    """``held``: the evaluator-input partitions the batch evaluator holds and
    has restored (it has its own consumer), counted as
    ``segmentflow_assigned_partitions`` counts them. ``tables_recovered``
    stays in the answer (what it said with the former Faust tables): the
    held partitions' stores are restored."""
    declared = topics_ready(app)
    return {
        "ready": bool(held) and declared and not app.rebalancing,
        "topics_declared": declared,
        "assigned_partitions": len(held),
        "rebalancing": bool(app.rebalancing),
        "tables_recovered": bool(held),
    }


def register_ops(ctx: ApiContext) -> None:
    app, settings, metrics = ctx.app, ctx.settings, ctx.metrics
    document = openapi_document()
    asyncapi = asyncapi_for(settings)
    asyncapi_yaml = render_yaml(asyncapi)

    @app.page("/health", name="health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return json_response({"status": "ok"})

    @app.page("/ready", name="ready")
    class Ready(View):
        """200 only when the worker holds partitions, is not rebalancing and
        has restored their stores: what a load balancer or a test waits for."""

        async def get(self, request: Request) -> Response:
            state = readiness(app, ctx.reads.held_partitions())
            return json_response(state, 200 if state["ready"] else 503)

    @app.page("/metrics", name="metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            # Sizes come from a scan: refresh them here, asynchronously and at
            # most every metrics_sizes_ttl seconds; the collector reads the cache.
            await ctx.reads.segment_sizes(settings.metrics_sizes_ttl)
            return web.Response(body=metrics.exposition(),
                                headers={"Content-Type": CONTENT_TYPE})

    @app.page("/openapi.json", name="openapi")
    class OpenApi(View):
        async def get(self, request: Request) -> Response:
            return json_response(document)

    @app.page("/asyncapi.json", name="asyncapi-json")
    class AsyncApiJson(View):
        async def get(self, request: Request) -> Response:
            return json_response(asyncapi)

    @app.page("/asyncapi.yaml", name="asyncapi-yaml")
    class AsyncApiYaml(View):
        async def get(self, request: Request) -> Response:
            return web.Response(text=asyncapi_yaml, content_type="application/yaml")


def register_ingest_ops(app: faust.App, metrics: Metrics, consuming: Callable[[], bool]) -> None:
    """The endpoints of an ingest-only process (SEGMENTFLOW_ROLE=ingest):
    /health, /ready (its topics exist and its consumer holds upstream
    partitions) and /metrics (the ingest counters). The API is the
    evaluator's."""

    @app.page("/health", name="health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return json_response({"status": "ok", "role": "ingest"})

    @app.page("/ready", name="ready")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            declared, held = topics_ready(app), consuming()
            state = {"ready": declared and held, "role": "ingest",
                     "topics_declared": declared, "consuming": held}
            return json_response(state, 200 if state["ready"] else 503)

    @app.page("/metrics", name="metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})
