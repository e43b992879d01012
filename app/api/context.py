"""What every API view needs, in one object handed to the resource modules."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import faust

from agents.state_reads import EvaluatorReads
from app.api.cluster import Cluster
from app.api.offload import HeavyWork
from app.api.writes import DefinitionWriter
from app.metrics import Metrics
from app.settings import Settings

__all__ = ["ApiContext", "coverage", "is_local"]


@dataclass
class ApiContext:
    app: faust.App
    settings: Settings
    reads: EvaluatorReads
    writer: DefinitionWriter
    metrics: Metrics
    cluster: Cluster
    work: HeavyWork


def is_local(request: Any) -> bool:
    """``local=1``: answer from this worker's partitions only (peer calls)."""
    return request.query.get("local") == "1"


def coverage(ctx: ApiContext, others: Iterable[int] = ()) -> dict[str, Any]:
    """Which partitions an answer covers: this worker's and ``others`` (those
    answered by peers). ``complete`` is false when some partition's share is
    missing (its worker unknown, e.g. during a rebalance, or ``local=1``)."""
    answered = sorted(set(ctx.reads.held_partitions()) | set(others))
    return {"partitions_answered": answered, "partitions_total": ctx.settings.partitions,
            "complete": len(answered) == ctx.settings.partitions}
