"""Scale out: two workers share the partitions; when one is killed the other
takes its partitions over (tables recovered from the changelogs) and the
result still equals a from-scratch recomputation."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import aiohttp
import pytest

from app.client import Publisher
from tests.integration.conftest import free_port
from tests.integration.helpers import (
    SYNC_SEGMENT,
    assert_same_members,
    clock_sync_inputs,
    fold,
    wait_clock_sync_seen,
)
from tests.integration.oracle import expected_members
from tools.workload import Workload, segment_mix

pytestmark = [pytest.mark.kafka, pytest.mark.multiworker]


async def wait_applied_across(workers, segment_ids, partitions, timeout=60.0) -> None:
    """Every partition, whichever worker holds it, applied and backfilled."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        for segment_id in segment_ids:
            while True:
                done: dict[str, bool] = {}
                for worker in workers:
                    async with session.get(f"{worker.url}/segments/{segment_id}/status") as r:
                        for p, s in (await r.json())["partitions"].items():
                            done[p] = s["version"] >= 1 and s["backfill_complete"]
                if len(done) == partitions and all(done.values()):
                    break
                assert time.monotonic() < deadline, f"{segment_id}: {done}"
                await asyncio.sleep(0.1)


async def test_two_workers_then_one(settings, worker_factory, reader, tmp_path):
    settings = settings.model_copy(update={"clock": "event", "partitions": 4})
    second_settings = settings.model_copy(update={
        "web_port": free_port(), "data_dir": tmp_path / "worker-b"})
    a, b = worker_factory(settings), worker_factory(second_settings)
    a.start()
    b.start()
    await asyncio.gather(a.wait_ready(), b.wait_ready())
    changes = await reader(settings.topics.membership_changes)

    workload = Workload(contacts=300, accounts=10, events=4000, seed=5)
    inputs = list(workload.inputs())
    end = max(getattr(i, "occurred_at", workload.start) for i in inputs) + timedelta(hours=1)
    inputs += clock_sync_inputs(settings.partitions, end)
    definitions = [*segment_mix(20), SYNC_SEGMENT]
    async with Publisher(settings) as pub:
        for definition in definitions:
            await pub.send(definition)
        await pub.flush()
        # Rebalances may still be settling: wait on whoever holds what.
        await wait_applied_across([a, b], [d.id for d in definitions], settings.partitions)
        half = len(inputs) // 2
        await pub.send_all(inputs[:half])
        await changes.wait_for(lambda v: len(v) >= 200, timeout=60)
        b.kill()  # its partitions move to a
        await pub.send_all(inputs[half:])

    # The killed worker's partitions wait for the group session timeout
    # before they move: wait for the last input of every partition (the
    # clock-sync contacts join "no-phone"), then for the stream to go quiet.
    sync_contacts = {i.contact_id for i in inputs[-settings.partitions:]}
    values = await wait_clock_sync_seen(changes, sync_contacts)
    assert_same_members(fold(values), expected_members(inputs, definitions, end))
