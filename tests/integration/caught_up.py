""""Caught up": the condition integration tests wait on instead of a quiet
period — the product's own (app/caught_up.py, what
``segmentflow status --wait-caught-up`` and ``GET /status`` use): every
input produced before the call has passed ingest and the evaluator, i.e.
the consumer groups have committed past it, and its changes are on the
output topics.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka import TopicPartition

from app.caught_up import CaughtUp, NotCaughtUp
from app.settings import Settings

__all__ = ["end_offsets", "wait_caught_up"]


async def end_offsets(settings: Settings, topics: Iterable[str]) -> dict[TopicPartition, int]:
    async with CaughtUp(settings) as probe:
        return await probe.end_offsets(tuple(topics))


async def wait_caught_up(settings: Settings, timeout: float = 60.0) -> None:
    """Return once the worker groups have committed past every input
    produced before this call; AssertionError after ``timeout``."""
    async with CaughtUp(settings) as probe:
        try:
            await probe.wait(timeout)
        except NotCaughtUp as exc:
            raise AssertionError(str(exc)) from None
