"""The clock: the group leader broadcasts a tick to every partition of the
evaluator's log, so each partition wakes exactly its due contacts, in order
with its other inputs. In event-time mode (replays) time moves with the
events instead and no ticks are sent."""

from __future__ import annotations

from datetime import UTC, datetime

import faust

from agents.codec import encode_envelope
from app.faust_app import Topics
from app.settings import Settings

__all__ = ["register_clock"]

TICK_KEY = b"__tick__"


def register_clock(app: faust.App, topics: Topics, settings: Settings) -> None:
    if settings.clock != "wall":
        return

    @app.timer(interval=settings.tick_interval, on_leader=True)
    async def broadcast_tick() -> None:
        value = encode_envelope("tick", {"at": datetime.now(UTC).isoformat()})
        for partition in range(settings.partitions):
            await topics.evaluator_input.send(key=TICK_KEY, value=value, partition=partition)
