"""Health and readiness endpoints (Faust web).

``/health`` answers while the process runs; ``/ready`` answers 200 only when
the worker holds partitions, is not rebalancing and has recovered its tables
— what a load balancer, a test, or an orchestrator should wait for.
"""

from __future__ import annotations

from typing import Any, Protocol

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


class SegmentStatusSource(Protocol):
    def segment_status(self, segment_id: str) -> dict[int, dict[str, Any]]: ...


def register_web(app: faust.App, evaluator: SegmentStatusSource) -> None:
    """``evaluator.segment_status(id)`` maps each partition this worker holds
    to the segment version its evaluator applied and the backfill progress."""

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
            status = evaluator.segment_status(segment_id)
            return self.json({
                "segment_id": segment_id,
                "partitions": {str(p): v for p, v in sorted(status.items())},
            })
