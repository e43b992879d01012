"""Health and readiness endpoints (Faust web).

``/health`` answers while the process runs; ``/ready`` answers 200 only when
the worker holds partitions, is not rebalancing and has recovered its tables
— what a load balancer, a test, or an orchestrator should wait for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust
from faust.web import Request, Response, View

__all__ = ["readiness", "register_web"]


def readiness(app: faust.App) -> dict[str, Any]:
    assignment = app.consumer.assignment() if app.consumer is not None else set()
    recovered = app.tables.recovery.completed.is_set()
    ready = bool(assignment) and not app.rebalancing and recovered
    return {
        "ready": ready,
        "assigned_partitions": len(assignment),
        "rebalancing": bool(app.rebalancing),
        "tables_recovered": recovered,
    }


def register_web(app: faust.App, segment_versions: Callable[[str], dict[int, int]]) -> None:
    """``segment_versions(segment_id)`` maps each partition this worker holds
    to the version of the segment its evaluator has applied."""

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/ready")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            state = readiness(app)
            return self.json(state, status=200 if state["ready"] else 503)

    @app.page("/segments/{segment_id}/status")
    class SegmentStatus(View):
        async def get(self, request: Request, segment_id: str) -> Response:
            versions = segment_versions(segment_id)
            return self.json({
                "segment_id": segment_id,
                "partitions": {str(p): v for p, v in sorted(versions.items())},
            })
