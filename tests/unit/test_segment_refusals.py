"""A definition the evaluator refuses is recorded with its reason (issue
#14: "applied or visibly refused, never in between"), survives a restart,
and is cleared by a later version or a delete; the previous version stays in
force. Real RocksDB through the harness of test_state_rocksdb (no broker)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agents.evaluator import EvaluatorHandle
from engine import CycleError
from tests.unit.test_state_rocksdb import PARIS, Worker

LINKED = {"id": "linked", "name": "Linked", "kind": "compound", "status": "live",
          "formula": 'in segment "paris"', "version": 1}
# Version 2 of paris references linked, which references paris: a cycle.
PARIS_V2 = {**PARIS, "kind": "compound", "name": "Paris v2",
            "formula": 'in segment "linked"', "version": 2}
CYCLE = "segment reference cycle: paris -> linked -> paris"


@pytest.fixture
async def worker(tmp_path: Path) -> AsyncIterator[Any]:
    made: list[Worker] = []

    def make(**settings: Any) -> Worker:
        made.append(Worker(tmp_path, **settings))
        return made[-1]

    yield make
    for w in made:
        w.close()


def _reads(w: Worker) -> EvaluatorHandle:
    reads = EvaluatorHandle(w.app, w.evaluator)
    reads.held_partitions = lambda: {0, 1}  # type: ignore[method-assign]
    reads._consumer_lag = lambda: {}  # type: ignore[method-assign]  # no consumer here
    return reads


async def _broadcast(w: Worker, kind: str, body: dict[str, Any]) -> None:
    for partition in (0, 1):
        w.begin(partition)
        await w.evaluator.handle(partition, kind, body)
        w.end()


async def _refused_everywhere(w: Worker, body: dict[str, Any]) -> None:
    for partition in (0, 1):
        w.begin(partition)
        with pytest.raises(CycleError):
            await w.evaluator.handle(partition, "segment", body)
        w.end()


async def test_a_refused_definition_is_recorded_and_the_previous_stays_in_force(
        worker: Any) -> None:
    first = worker(partitions=2)
    await _broadcast(first, "segment", {**PARIS, "version": 1})
    await _broadcast(first, "segment", LINKED)
    await _refused_everywhere(first, PARIS_V2)

    reads = _reads(first)
    first.metrics.watch(reads)
    refusal = {"version": 2, "reason": CYCLE}
    assert reads.refusals() == {"paris": refusal}
    status = reads.segment_status("paris")
    assert {p: (s["version"], s["refused"]) for p, s in status.items()} == {
        0: (1, refusal), 1: (1, refusal)}
    assert reads.segment_status("linked")[0]["refused"] is None
    assert reads.definitions()["paris"].formula == 'city = "Paris"'  # v1 in force
    assert first.metrics.registry.get_sample_value("segmentflow_segments_refused") == 1
    first.close()

    # A restart (or a rebalance) keeps the refusal: it is in the segments
    # table, not only in memory; the catalog rebuild ignores it.
    w = worker(partitions=2)
    reads = _reads(w)
    w.metrics.watch(reads)
    assert reads.refusals() == {"paris": refusal}
    assert sorted(w.evaluator.catalogs.get(0)) == ["linked", "paris"]
    assert w.evaluator.catalogs.quarantined(0) == {}

    # A later version that is applied clears it.
    await _broadcast(w, "segment", {**PARIS, "version": 3})
    assert reads.refusals() == {}
    assert reads.segment_status("paris")[1]["refused"] is None
    assert w.metrics.registry.get_sample_value("segmentflow_segments_refused") == 0


async def test_a_delete_clears_the_refusal_of_a_segment_never_applied(worker: Any) -> None:
    w = worker(partitions=2)
    await _broadcast(w, "segment", {**PARIS, "version": 1})
    await _broadcast(w, "segment", LINKED)
    # "loop" never existed: refused at version 1, nothing of it is in force.
    loop = {"id": "loop", "name": "Loop", "kind": "compound", "status": "live",
            "formula": 'in segment "linked"', "version": 1}
    await _broadcast(w, "segment", {**LINKED, "formula": 'in segment "loop"', "version": 2})
    await _refused_everywhere(w, loop)
    reads = _reads(w)
    assert "loop" not in reads.definitions()
    assert reads.refusals() == {"loop": {
        "version": 1, "reason": "segment reference cycle: loop -> linked -> loop"}}
    await _broadcast(w, "segment_delete", {"op": "delete", "segment_id": "loop"})
    assert reads.refusals() == {}
