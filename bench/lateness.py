"""Lateness of time-driven transitions (wall clock mode).

One live segment ``performed page_visited within last 1 minutes``; ``contacts``
contacts each get one page visit with ``occurred_at`` = now - 60 s + d, d
spread over ``spread`` seconds after a lead time, so each contact joins at once
and must leave at its due instant ``occurred_at + 60 s`` — hundreds of
contacts falling due over ~``spread`` s, from the clock alone.

lateness = change.at (as emitted) - due, and = time read by an outside
consumer - due.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import orjson
from harness import Scenario, percentiles, wait_applied

from app.client import Publisher, tail
from models.inputs import Interaction
from models.segments import SegmentDefinition

SEGMENT = SegmentDefinition(id="visited-1m", name="visited-1m", status="live",
                            formula="performed page_visited within last 1 minutes")


async def run(bootstrap: str, contacts: int = 300, spread: float = 20.0, lead: float = 8.0,
              partitions: int = 4) -> dict:
    sc = Scenario(bootstrap, partitions=partitions, name="late")
    try:
        await sc.start_worker()
        assert sc.worker is not None
        due: dict[str, datetime] = {}
        emitted: list[float] = []
        observed: list[float] = []
        joined = 0

        async def observe() -> None:
            nonlocal joined
            async for _, value in tail(sc.settings, sc.settings.topics.membership_changes):
                if value is None:
                    continue
                c = orjson.loads(value)
                if c["segment_id"] != SEGMENT.id:
                    continue
                if c["change"] == "joined":
                    joined += 1
                    continue
                d = due.get(c["contact_id"])
                if d is None:
                    continue
                now = datetime.now(UTC)
                emitted.append((datetime.fromisoformat(c["at"]) - d).total_seconds())
                observed.append((now - d).total_seconds())

        async with Publisher(sc.settings) as pub:
            await pub.send(SEGMENT)
            await pub.flush()
            await wait_applied(sc.worker, [SEGMENT], partitions)
            observer = asyncio.create_task(observe())
            base = datetime.now(UTC) - timedelta(minutes=1) + timedelta(seconds=lead)
            for i in range(contacts):
                at = base + timedelta(seconds=spread * i / contacts)
                cid = f"late{i:05d}"
                due[cid] = at + timedelta(minutes=1)
                await pub.send(Interaction(event_id=f"late-{i}", contact_id=cid,
                                           type="page_visited", occurred_at=at,
                                           properties={}))
            await pub.flush()
        deadline = time.monotonic() + lead + spread + 30
        while len(observed) < contacts and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        observer.cancel()
        return {"contacts": contacts, "spread_seconds": spread, "joined": joined,
                "left_observed": len(observed),
                "lateness_emitted_ms": percentiles(emitted),
                "lateness_observed_ms": percentiles(observed)}
    finally:
        sc.cleanup()


if __name__ == "__main__":
    import json

    from harness import start_broker

    print(json.dumps(asyncio.run(run(start_broker())), indent=2))
