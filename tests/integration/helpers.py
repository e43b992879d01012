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
    segment (0: its deletion) and finished the backfill: inputs produced after
    this are evaluated against it, and every existing contact was re-evaluated."""
    deadline = time.monotonic() + timeout
    url = f"{worker.url}/segments/{segment_id}/status"
    seen: dict[str, dict] = {}
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            async with session.get(url) as response:
                seen = (await response.json())["partitions"]
            if len(seen) == partitions and all(
                v["version"] == version and v["backfill_version"] == version
                and v["backfill_complete"] for v in seen.values()
            ):
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"segment {segment_id} v{version} not applied everywhere: {seen}")


def fold(changes: list[dict]) -> dict[tuple[str, str], bool]:
    """Final membership per (segment, contact) from a change stream, the way
    a consumer does it: drop any change whose sequence is not greater than
    the last applied one; check that what is kept has no gap and alternates."""
    last_seq: dict[tuple[str, str], int] = {}
    member: dict[tuple[str, str], bool] = {}
    for c in changes:
        key = (c["segment_id"], c["contact_id"])
        if c["sequence"] <= last_seq.get(key, 0):
            continue  # a replay after a crash
        joined = c["change"] == "joined"
        assert c["sequence"] == last_seq.get(key, 0) + 1, f"a change was lost before {c}"
        assert member.get(key, False) != joined, f"not alternating at {c}"
        assert (c["sequence"] % 2 == 1) == joined, f"sequence parity wrong at {c}"
        last_seq[key], member[key] = c["sequence"], joined
    return {k: v for k, v in member.items() if v}


async def wait_clock_sync_seen(changes, sync_contacts: set[str], timeout: float = 120.0) -> list:
    """Wait until every clock-sync contact (the last input of each partition,
    see test_replay.clock_sync_inputs) joined "no-phone" — every partition
    has then been processed to its end — and for the stream to go quiet."""
    await changes.wait_for(lambda v: sync_contacts <= {
        c["contact_id"] for c in v if c["segment_id"] == "no-phone"}, timeout=timeout)
    return await changes.settle(quiet=3.0)
