"""Wires the HTTP API into the Faust app (the views live in ``app.api``)."""

from __future__ import annotations

import logging
from typing import Any

import faust

from agents.batch_evaluator import BatchEvaluatorHandle
from agents.event_types import EventTypeFeed
from app.api.backtest import register_backtest
from app.api.cluster import Cluster, GroupPeers
from app.api.contacts import register_contacts
from app.api.context import ApiContext
from app.api.engagement import register_engagement
from app.api.errors import json_errors_middleware
from app.api.event_types import register_event_types
from app.api.fields import register_fields
from app.api.insights import register_insights
from app.api.offload import HeavyWork
from app.api.ops import readiness, register_ops
from app.api.recent import register_recent
from app.api.segments import register_segments
from app.api.status import register_status
from app.api.versions import register_versions
from app.api.writes import DefinitionWriter
from app.console import register_console
from app.faust_app import Topics
from app.insights.fold import register_insights_fold
from app.metrics import Metrics
from app.settings import Settings

__all__ = ["readiness", "register_web", "web_application_options"]

log = logging.getLogger(__name__)


def web_application_options(settings: Settings) -> dict[str, Any]:
    """aiohttp options: JSON errors everywhere, and bodies bounded while read."""
    return {"client_max_size": settings.api_max_body_bytes,
            "middlewares": [json_errors_middleware]}


def register_web(app: faust.App, evaluator: BatchEvaluatorHandle, topics: Topics,
                 settings: Settings, metrics: Metrics,
                 event_types: EventTypeFeed | None = None) -> None:
    work = HeavyWork(settings.api_workers, settings.api_max_concurrent,
                     settings.api_work_timeout)
    group_peers = GroupPeers(settings.bootstrap_servers, f"{settings.topic_prefix}-evaluator",
                             settings.topics.evaluator_input)

    @app.task
    async def _find_peers() -> None:
        await group_peers.run()

    event_types = event_types or EventTypeFeed.fixed()
    ctx = ApiContext(app, settings, evaluator, DefinitionWriter(
        evaluator, topics, work, settings.api_definition_chars_per_second,
        event_types, settings.accept_undeclared_event_types),
                     metrics, Cluster(app, group_peers), work)

    @app.task
    async def start_api_workers() -> None:
        # Spawned processes take about a second to import the models.
        work.warm_up()
        url = f"http://{settings.web_host}:{settings.web_port}"
        log.info("API at %s (OpenAPI document: %s/openapi.json)", url, url)
        log.info("Web console at %s/ui", url)

    register_ops(ctx)
    register_segments(ctx)
    register_contacts(ctx)
    register_backtest(ctx)  # /backtest over the retained history (docs/history.md)
    register_fields(ctx)  # /fields: the field catalogue (runtime/fields.py)
    register_engagement(ctx)  # /segments/{id}/engagement: members' interactions per day
    register_event_types(ctx, event_types, topics.event_types)  # docs/event-types.md
    register_status(ctx, topics)  # /status, /clock/advance (docs/clock.md)
    register_console(ctx)  # the web console at /ui (app/console)
    fold = register_insights_fold(app, settings)
    register_insights(ctx, fold)  # docs/insights.md
    register_recent(ctx, fold)  # /insights/recent: the list's last hour and day
    register_versions(ctx)  # /segments/{id}/versions, read from the definitions topic
