"""Small waits shared by integration tests."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from app.worker_process import WorkerProcess


async def wait_segment_applied(
    worker: WorkerProcess, segment_id: str, version: int, partitions: int, timeout: float = 30.0
) -> None:
    """Wait until every partition's evaluator has applied ``version`` of the
    segment: inputs produced after this are evaluated against it."""
    deadline = time.monotonic() + timeout
    url = f"{worker.url}/segments/{segment_id}/status"
    seen: dict[str, dict] = {}
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            async with session.get(url) as response:
                seen = (await response.json())["partitions"]
            if len(seen) == partitions and all(
                v["version"] >= version and v["backfill_complete"] for v in seen.values()
            ):
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"segment {segment_id} v{version} not applied everywhere: {seen}")
