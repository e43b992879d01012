"""Small waits and checks shared by integration tests."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from agents.partitioning import one_key_per_partition
from app.settings import secret_value
from app.worker_process import WorkerProcess
from models.inputs import Interaction
from models.segments import SegmentDefinition


async def wait_segment_applied(
    worker: WorkerProcess, segment_id: str, version: int, partitions: int, timeout: float = 30.0
) -> None:
    """Wait until every partition's evaluator has applied ``version`` of the
    segment (0: its deletion) and finished the backfill: inputs produced after
    this are evaluated against it, and every existing contact was re-evaluated."""
    deadline = time.monotonic() + timeout
    url = f"{worker.url}/segments/{segment_id}/status"
    seen: dict[str, dict] = {}
    token = secret_value(worker.settings.api_token)  # reads need it once one is set
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(headers=headers) as session:
        while time.monotonic() < deadline:
            async with session.get(url) as response:
                answer = await response.json()
            # A worker just started may answer 503 (no partition yet): poll on.
            seen = answer.get("partitions", {}) if response.status == 200 else {}
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
    see clock_sync_inputs) joined the "clock-sync" segment — every partition
    has then been processed to its end — and for the stream to go quiet."""
    await changes.wait_for(lambda v: sync_contacts <= {
        c["contact_id"] for c in v if c["segment_id"] == "clock-sync"}, timeout=timeout)
    return await changes.settle()


def assert_same_members(got: dict, want: dict) -> None:
    assert got == want, (
        f"missing {sorted(set(want) - set(got))[:10]}, extra {sorted(set(got) - set(want))[:10]}"
    )


def snapshot_members(snapshot) -> set[tuple[str, ...]]:
    """Members according to the compacted snapshot topic: the last record per
    "segment/contact" key, tombstones meaning "not a member"."""
    last: dict[bytes, bytes | None] = {}
    for key, value in snapshot.records:
        last[key] = value
    return {tuple(k.decode().split("/", 1)) for k, v in last.items() if v is not None}


# Joined by exactly the clock-sync contacts: proof that a partition's log has
# been evaluated up to its last input.
SYNC_SEGMENT = SegmentDefinition(
    id="clock-sync", name="clock sync", status="live",
    formula="performed email_sent where sync exists ever")


def clock_sync_inputs(partitions: int, at) -> list[Interaction]:
    """One input per partition at ``at``: every partition's event clock then
    reaches ``at`` and wakes what is due by then; the contacts join
    ``SYNC_SEGMENT``."""
    return [Interaction(event_id=f"sync-{n}", contact_id=contact_id, type="email_sent",
                        occurred_at=at, properties={"sync": True})
            for n, contact_id in one_key_per_partition("clock-", partitions)]
