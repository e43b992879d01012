"""Standby replicas on a real broker (runtime/assignor.py, runtime/standby.py):
two evaluators share the partitions; the second keeps standby copies of
the first's. The first is killed (in-flight work dropped, no settle): the
survivor takes its partitions over by restoring only what its standby copy
had not seen (nothing, once it caught up), where without standbys it
restores each partition's whole changelog. Either way nothing is lost: the
folded changes equal the broker-free driver's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from models.changes import MembershipChange
from runtime.driver import Driver, fold_changes
from runtime.processor import ProcessorConfig
from tests.integration.test_batch_loop import (
    PARTITIONS,
    SEGMENTS,
    _create_topics,
    _ends,
    _inputs,
    _loop,
    _produce,
    _read_all,
    _topics,
)

pytestmark = pytest.mark.kafka


async def _until(condition: asyncio.Condition, predicate: Callable[[], bool]) -> None:
    async with condition:
        await asyncio.wait_for(condition.wait_for(predicate), timeout=60)


@pytest.mark.parametrize("standby_replicas", [0, 1])
async def test_a_killed_workers_partitions_move_to_the_standby_copies(
        kafka_bootstrap: str, tmp_path: Path, standby_replicas: int) -> None:
    prefix = f"sb-{uuid.uuid4().hex[:8]}"
    topics = _topics(prefix)
    await _create_topics(kafka_bootstrap, topics)
    driver = Driver(PARTITIONS, config=ProcessorConfig(partitions=PARTITIONS, clock="event"))
    group = f"{prefix}-evaluator"
    first = _loop(kafka_bootstrap, topics, group, tmp_path / "a", standby_replicas)
    second = _loop(kafka_bootstrap, topics, group, tmp_path / "b", standby_replicas)
    try:
        await _produce(kafka_bootstrap, topics.input, [("segment", s) for s in SEGMENTS], driver)
        ends = await _produce(kafka_bootstrap, topics.input, _inputs(0), driver)
        await first.start()
        await first.wait_committed(ends, timeout=60)
        await second.start()  # the group rebalances: the first keeps its warm partitions
        await _until(second.progress, lambda: bool(second.processors))
        ends = await _produce(kafka_bootstrap, topics.input, _inputs(1), driver)
        for evaluator in (first, second):
            await evaluator.wait_committed(
                {p: e for p, e in ends.items() if p in evaluator.processors}, timeout=60)
        moved = set(first.processors)
        assert moved and set(second.processors) == set(range(PARTITIONS)) - moved
        changelog_ends = await _ends(kafka_bootstrap, topics.changelog)
        if standby_replicas:
            assert second.standbys.partitions == moved
            caught_up = {p: changelog_ends[p] - 1 for p in moved}
            await _until(second.standbys.progress,
                         lambda: second.standbys.checkpoints() == caught_up)
            assert second.standbys.lag() == {p: 0 for p in moved}  # segmentflow_standby_lag_records
        else:
            assert second.standbys.partitions == set()

        await first.stop(settle=False)  # kill: nothing settles, the group moves on
        await _until(second.progress, lambda: set(second.processors) == set(range(PARTITIONS)))
        # With a caught-up standby copy nothing is left to restore; without
        # one, the partition's whole changelog is read.
        assert {p: second.stats.restored[p] for p in moved} == {
            p: 0 if standby_replicas else changelog_ends[p] for p in moved}

        ends = await _produce(kafka_bootstrap, topics.input, _inputs(2), driver)
        await second.wait_committed(ends, timeout=60)
        driver.run_until_idle()
        want = driver.members()
        records = await _read_all(kafka_bootstrap, topics.changes, PARTITIONS)
        got = fold_changes([MembershipChange.model_validate_json(r.value) for r in records])
        assert got == want
        assert sum(len(v) for v in want.values()) > 50
    finally:
        await second.stop()
        driver.close()
