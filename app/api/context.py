"""What every API view needs, in one object handed to the resource modules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from agents.state_reads import EvaluatorReads
from app.api.writes import DefinitionWriter
from app.metrics import Metrics
from app.settings import Settings

__all__ = ["ApiContext", "coverage"]


@dataclass
class ApiContext:
    app: faust.App
    settings: Settings
    reads: EvaluatorReads
    writer: DefinitionWriter
    metrics: Metrics


def coverage(ctx: ApiContext) -> dict[str, Any]:
    """Which partitions an answer covers. ``complete`` is false when other
    workers hold some partitions: their share is not in this answer."""
    held = sorted(ctx.reads.held_partitions())
    return {"partitions_answered": held, "partitions_total": ctx.settings.partitions,
            "complete": len(held) == ctx.settings.partitions}
