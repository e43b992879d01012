"""Operational endpoints: health, readiness, Prometheus metrics, OpenAPI."""

from __future__ import annotations

from typing import Any

import faust
from aiohttp import web
from faust.web import Request, Response, View

from app.api.context import ApiContext
from app.api.errors import json_response
from app.api.openapi import openapi_document
from app.metrics import CONTENT_TYPE
from app.topic_setup import topics_ready

__all__ = ["readiness", "register_ops"]


def readiness(app: faust.App, evaluator_topic: str,
              batch_held: set[int] | None = None) -> dict[str, Any]:
    """``assigned_partitions`` counts the evaluator-input partitions assigned
    here, as ``segmentflow_assigned_partitions`` does (the consumer's whole
    assignment also holds every input topic's and changelog's partitions:
    105 where the metric said 8). ``batch_held``: the batch evaluator's
    restored partitions (it has its own consumer; SEGMENTFLOW_EVALUATOR=batch)."""
    if batch_held is not None:
        declared = topics_ready(app)
        return {
            "ready": bool(batch_held) and declared and not app.rebalancing,
            "topics_declared": declared,
            "assigned_partitions": len(batch_held),
            "rebalancing": bool(app.rebalancing),
            "tables_recovered": bool(batch_held),
        }
    assignment = app.consumer.assignment() if app.consumer is not None else set()
    recovered = app.tables.recovery.completed.is_set()
    declared = topics_ready(app)
    ready = bool(assignment) and not app.rebalancing and recovered and declared
    return {
        "ready": ready,
        "topics_declared": declared,
        "assigned_partitions": sum(1 for tp in assignment if tp.topic == evaluator_topic),
        "rebalancing": bool(app.rebalancing),
        "tables_recovered": recovered,
    }


def register_ops(ctx: ApiContext) -> None:
    app, settings, metrics = ctx.app, ctx.settings, ctx.metrics
    document = openapi_document()

    @app.page("/health", name="health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return json_response({"status": "ok"})

    @app.page("/ready", name="ready")
    class Ready(View):
        """200 only when the worker holds partitions, is not rebalancing and
        has recovered its tables: what a load balancer or a test waits for."""

        async def get(self, request: Request) -> Response:
            held = ctx.reads.held_partitions() if settings.evaluator == "batch" else None
            state = readiness(app, settings.topics.evaluator_input, held)
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
