"""Issue 13's acceptance test, without a broker: the shared Online Retail
purchases replayed with NO segment defined, then segments of every kind
defined — profile, windowed count / sum / avg, absence, ``ever``, an
absolute range and a compound — must have exactly the members they have
when defined before the replay, and exactly those of a from-scratch
recomputation (the naive reference evaluator over every input)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.timeutil import from_us
from models.inputs import ContactUpsert, Interaction
from models.segments import SegmentDefinition
from runtime.driver import Driver
from runtime.processor import ProcessorConfig
from tests.integration.oracle import expected_members
from tools.retail_dataset import replay_inputs

LINES = 40_000  # purchase lines: about seven weeks of the shop's history
PARTITIONS = 3

SEGMENTS = [
    {"id": "france", "formula": 'country = "France"'},
    {"id": "weekly-buyers", "formula": "performed purchase at least 5 times within last 7 days"},
    {"id": "big-spenders", "formula": "sum amount of purchase within last 30 days >= 1000"},
    {"id": "big-baskets", "formula": "avg amount of purchase within last 14 days > 40"},
    {"id": "lapsed", "formula": "first_seen_at exists and not performed purchase "
                                "within last 21 days"},
    {"id": "loyal", "formula": "performed purchase at least 100 times ever"},
    {"id": "december", "formula": "performed purchase at least 20 times "
                                  "between 2010-12-01 and 2010-12-31"},
    {"id": "uk-big-spenders", "kind": "compound",
     "formula": 'in segment "big-spenders" and country = "United Kingdom"'},
]


def _definitions() -> list[dict[str, Any]]:
    return [{"name": s["id"], "kind": "dynamic", "status": "live", "version": 1, **s}
            for s in SEGMENTS]


def history_definitions() -> list[SegmentDefinition]:
    """The segments of this test, as models (the real-broker test reuses them)."""
    return [SegmentDefinition.model_validate(d) for d in _definitions()]


def _envelope(inp: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(inp, Interaction):
        return "interaction", inp.model_dump(mode="json")
    assert isinstance(inp, ContactUpsert)
    return "contact", inp.model_dump(mode="json", exclude_unset=True)


def _replay(inputs: list[Any], segments_first: bool) -> tuple[dict[str, set[str]], int]:
    end = max(i.occurred_at for i in inputs if isinstance(i, Interaction))
    config = ProcessorConfig(partitions=PARTITIONS, clock="event", backfill_chunk=500)
    driver = Driver(PARTITIONS, config=config, store="rocksdb", batch_size=500, depth=2)
    try:
        if segments_first:
            for body in _definitions():
                driver.send("segment", body)
        for inp in inputs:
            driver.send(*_envelope(inp))
        # every partition's clock at the last purchase (the replay's end)
        driver.send("clock", {"to": end.isoformat()})
        driver.run_until_idle()
        if not segments_first:
            for body in _definitions():
                driver.send("segment", body)
            driver.run_until_idle()
        clocks = {p.event_clock for p in driver.processors.values()}
        assert len(clocks) == 1 and None not in clocks  # every partition saw the last day
        members = {sid: cids for sid, cids in driver.members().items() if cids}
        return members, clocks.pop()  # type: ignore[return-value]
    finally:
        driver.close()


@pytest.fixture(scope="module")
def retail_inputs() -> list[Any]:
    return list(replay_inputs(limit=LINES))


def test_segments_defined_after_the_replay_equal_defined_before(retail_inputs) -> None:
    after, clock = _replay(retail_inputs, segments_first=False)
    before, clock_before = _replay(retail_inputs, segments_first=True)
    assert clock == clock_before
    definitions = history_definitions()
    naive: dict[str, set[str]] = {}
    for (sid, cid), member in expected_members(retail_inputs, definitions,
                                               from_us(clock)).items():
        if member:
            naive.setdefault(sid, set()).add(cid)
    assert after == naive
    assert before == naive
    # every kind of condition has members to compare
    assert set(naive) == {s["id"] for s in SEGMENTS}
