"""kill -9 of the worker in the middle of a stream, then a restart on the same
data directory: nothing lost, replays only, and the fold equals a from-scratch
recomputation (the at-least-once + sequence-number contract of the README)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from app.client import Publisher
from tests.integration.helpers import (
    SYNC_SEGMENT,
    assert_same_members,
    clock_sync_inputs,
    fold,
    snapshot_members,
    wait_clock_sync_seen,
    wait_segment_applied,
)
from tests.integration.oracle import expected_members
from tools.workload import Workload, segment_mix

pytestmark = pytest.mark.kafka


async def test_kill_9_and_restart_loses_nothing(settings, worker_factory, reader):
    settings = settings.model_copy(update={"clock": "event"})
    workload = Workload(contacts=300, accounts=20, events=6000, seed=11)
    inputs = list(workload.inputs())
    end = max(getattr(i, "occurred_at", workload.start) for i in inputs) + timedelta(hours=1)
    inputs += clock_sync_inputs(settings.partitions, end)
    definitions = [*segment_mix(20), SYNC_SEGMENT]

    first = worker_factory(settings)
    first.start()
    await first.wait_ready()  # the worker creates its topics; then read them
    changes = await reader(settings.topics.membership_changes)
    snapshot = await reader(settings.topics.memberships)
    async with Publisher(settings) as pub:
        for definition in definitions:
            await pub.send(definition)
        await pub.flush()
        for definition in definitions:
            await wait_segment_applied(first, definition.id, 1, settings.partitions)

        half = len(inputs) // 2
        await pub.send_all(inputs[:half])
        # Crash while the worker is busy with the first half.
        await changes.wait_for(lambda v: len(v) >= 300, timeout=60)
        first.kill()
        killed_at = len(changes.records)
        await pub.send_all(inputs[half:])

    second = worker_factory(settings)
    second.start()
    await second.wait_ready()
    sync_contacts = {i.contact_id for i in inputs[-settings.partitions:]}
    values = await wait_clock_sync_seen(changes, sync_contacts)

    got = fold(values)  # asserts no gap and alternation per (segment, contact)
    assert_same_members(got, expected_members(inputs, definitions, end))
    assert snapshot_members(snapshot) == set(got)
    distinct = {(c["segment_id"], c["contact_id"], c["sequence"]) for c in values}
    print(f"\nkilled after {killed_at} changes; {len(values)} changes in all, "
          f"{len(values) - len(distinct)} replayed duplicates dropped by sequence")
    await asyncio.sleep(0)
