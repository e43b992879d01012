"""Retained history (issue 13): segments defined or changed after the data
see it, through the runtime's per-contact archive, on one partition driven
without a broker (``runtime.driver.Driver``, real RocksDB where it matters).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from runtime.driver import Driver
from runtime.keys import Keyspace, archive_prefix
from runtime.processor import ProcessorConfig

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _driver(store: str = "rocksdb", chunk: int = 1000, retention_days: int = 400) -> Driver:
    config = ProcessorConfig(partitions=1, clock="event", backfill_chunk=chunk,
                             history_retention_days=retention_days)
    return Driver(1, config=config, store=store, batch_size=1000, depth=0,  # type: ignore[arg-type]
                  wall=lambda: T0)


def _segment(sid: str, formula: str, version: int = 1) -> dict[str, Any]:
    return {"id": sid, "name": sid, "kind": "dynamic", "status": "live", "version": version,
            "formula": formula}


def _purchase(cid: str, n: int, at: datetime, amount: float = 10.0) -> dict[str, Any]:
    return {"event_id": f"{cid}-p{n}", "contact_id": cid, "type": "purchase",
            "occurred_at": at.isoformat(), "properties": {"amount": amount}}


def _archived(driver: Driver, cid: str) -> int:
    txn = driver.processors[0].store.begin()
    try:
        return sum(1 for _ in txn.scan_prefix(Keyspace.ARCHIVE, archive_prefix(cid)))
    finally:
        txn.close()


def test_a_segment_defined_after_the_data_sees_it() -> None:
    """3 purchases in the last 180 days; the segment is defined afterwards."""
    driver = _driver()
    try:
        for cid, count in (("a", 3), ("b", 2), ("c", 4)):
            for n in range(count):
                driver.send("interaction", _purchase(cid, n, T0 + timedelta(days=20 * n)))
        driver.send("interaction", _purchase("z", 0, T0 + timedelta(days=300)))  # the clock
        driver.run()
        driver.send("segment", _segment(
            "buyers", "performed purchase at least 3 times within last 180 days"))
        driver.send("segment", _segment("ever", "performed purchase at least 3 times ever"))
        driver.run_until_idle()
        members = driver.members()
        # at day 300 the last 180 days start at day 120: c's purchases at 0,
        # 20, 40, 60 are older, so "within" has nobody; "ever" has a and c
        assert members.get("buyers", set()) == set()
        assert members["ever"] == {"a", "c"}
    finally:
        driver.close()


def test_contacts_with_nothing_to_rebuild_are_evaluated_too() -> None:
    """Most contacts have no event of a new segment's type: the go-live
    skips rebuilding them (and applying, when the definition changes
    nothing for them) yet each one still gets its membership: the negated
    segment takes in exactly the contacts without a recent purchase, in
    chunks smaller than the partition."""
    driver = _driver(chunk=3)
    try:
        for n in range(8):
            driver.send("contact", {"contact_id": f"p{n}", "attributes": {"n": n}})
        for cid, count in (("a", 3), ("b", 1)):
            for n in range(count):
                driver.send("interaction", _purchase(cid, n, T0 + timedelta(days=n)))
        driver.send("interaction", _purchase("old", 0, T0 - timedelta(days=60)))
        driver.run()
        driver.send("segment", _segment(
            "thrice", "performed purchase at least 3 times within last 30 days"))
        driver.send("segment", _segment("none", "not performed purchase within last 30 days"))
        driver.run_until_idle()
        members = driver.members()
        assert members["thrice"] == {"a"}
        assert members["none"] == {f"p{n}" for n in range(8)} | {"old"}
    finally:
        driver.close()


def test_widening_a_window_admits_exactly_the_contacts_it_should() -> None:
    driver = _driver()
    try:
        now = T0 + timedelta(days=100)
        ages = {"recent": 10, "month": 45, "quarter": 80, "old": 95}
        for cid, age in ages.items():
            driver.send("interaction", _purchase(cid, 0, now - timedelta(days=age)))
        driver.send("interaction", _purchase("clock", 0, now))
        driver.send("segment", _segment("active", "performed purchase within last 30 days"))
        driver.run_until_idle()
        assert driver.members()["active"] == {"recent", "clock"}
        driver.send("segment", _segment(
            "active", "performed purchase within last 90 days", version=2))
        driver.run_until_idle()
        assert driver.members()["active"] == {"recent", "month", "quarter", "clock"}
    finally:
        driver.close()


def test_inputs_before_the_backfill_reaches_a_contact_see_its_history() -> None:
    """One contact per backfill chunk: a purchase for a contact the backfill
    has not reached yet is folded on top of its retained history, not
    instead of it."""
    driver = _driver(chunk=1)
    try:
        for cid in ("a", "b", "c"):
            for n in range(2):
                driver.send("interaction", _purchase(cid, n, T0 + timedelta(days=n)))
        driver.run()
        driver.send("segment", _segment("three", "performed purchase at least 3 times ever"))
        driver.send("interaction", _purchase("c", 2, T0 + timedelta(days=5)))  # same batch
        driver.run()  # one chunk: only "a" re-evaluated so far
        assert driver.processors[0].backfills
        driver.run_until_idle()
        assert driver.members()["three"] == {"c"}
    finally:
        driver.close()


def test_duplicates_are_archived_once() -> None:
    driver = _driver()
    try:
        event = _purchase("a", 0, T0)
        for _ in range(3):
            driver.send("interaction", event)
        driver.send("interaction", _purchase("a", 1, T0 + timedelta(days=1)))
        driver.run()
        assert _archived(driver, "a") == 2
        driver.send("segment", _segment("two", "performed purchase at least 2 times ever"))
        driver.send("segment", _segment("three", "performed purchase at least 3 times ever"))
        driver.run_until_idle()
        members = driver.members()
        assert members["two"] == {"a"}
        assert members.get("three", set()) == set()
    finally:
        driver.close()


def test_erasure_forgets_the_history() -> None:
    driver = _driver()
    try:
        for n in range(3):
            driver.send("interaction", _purchase("a", n, T0 + timedelta(days=n)))
        driver.send("contact", {"contact_id": "a", "op": "delete"})
        driver.send("interaction", _purchase("a", 9, T0 + timedelta(days=9)))  # back, new
        driver.run()
        assert _archived(driver, "a") == 1
        driver.send("segment", _segment("two", "performed purchase at least 2 times ever"))
        driver.run_until_idle()
        assert "a" not in driver.members().get("two", set())
    finally:
        driver.close()


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_events_older_than_the_retention_are_not_seen_and_are_dropped(store: str) -> None:
    driver = _driver(store=store, retention_days=30)
    try:
        driver.send("interaction", _purchase("a", 0, T0))
        driver.send("interaction", _purchase("a", 1, T0 + timedelta(days=20)))
        driver.send("interaction", _purchase("a", 2, T0 + timedelta(days=40)))  # clock: day 40
        driver.run()
        driver.send("segment", _segment("three", "performed purchase at least 3 times ever"))
        driver.send("segment", _segment("two", "performed purchase at least 2 times ever"))
        driver.run_until_idle()
        members = driver.members()
        assert members.get("three", set()) == set()  # day 0 is past the 30 days kept
        assert members["two"] == {"a"}
        assert _archived(driver, "a") == 2  # the expired entry was deleted when read
    finally:
        driver.close()


def test_a_window_longer_than_the_retention_is_refused_with_the_limit() -> None:
    driver = _driver(retention_days=30)
    try:
        driver.send("segment", _segment("long", "performed purchase within last 60 days"))
        driver.send("segment", _segment("ok", "performed purchase within last 30 days"))
        driver.send("interaction", _purchase("a", 0, T0))
        driver.run_until_idle()
        (_, _, reason), = driver.dead_letters
        assert "60 days" in reason and "30 days" in reason and "RETENTION" in reason
        assert driver.members() == {"ok": {"a"}}
    finally:
        driver.close()


def test_the_sweep_drops_what_the_retention_no_longer_covers() -> None:
    """Contacts no go-live reads lose their expired history too."""
    config = ProcessorConfig(partitions=1, clock="event", history_retention_days=30,
                             archive_sweep_seconds=0, archive_sweep_chunk=2)
    driver = Driver(1, config=config, store="rocksdb", batch_size=2, depth=0,
                    wall=lambda: T0)
    try:
        for cid in ("a", "b", "c"):
            for n in range(3):
                driver.send("interaction", _purchase(cid, n, T0 + timedelta(days=n)))
        driver.send("interaction", _purchase("d", 0, T0 + timedelta(days=40)))  # the clock
        driver.run()
        driver.run(idle_rounds=6)  # the pass: two keys a batch
        assert [_archived(driver, cid) for cid in "abcd"] == [0, 0, 0, 1]
    finally:
        driver.close()


def test_kept_history_limits_per_type() -> None:
    """SEGMENTFLOW_MAX_EVENTS_BY_TYPE: a type's own bound on what a contact
    keeps for relative windows; other types keep the general one."""
    from engine import Catalog, Limits, apply
    from models.inputs import Interaction
    from models.segments import SegmentDefinition

    limits = Limits(max_events_per_type=5, events_by_type=(("purchase", 2),))
    catalog = Catalog.empty(limits)
    for sid, etype in (("p", "purchase"), ("v", "page_visited")):
        catalog = catalog.put(SegmentDefinition.model_validate({
            "id": sid, "name": sid, "status": "live",
            "formula": f"performed {etype} at least 3 times within last 30 days"}))
    state = None
    for n in range(4):
        for etype in ("purchase", "page_visited"):
            at = T0 + timedelta(hours=n)
            event = Interaction(event_id=f"{etype}{n}", contact_id="a", type=etype,
                                occurred_at=at, properties={})
            state = apply(state, event, catalog, at, {}).state
    assert state is not None
    assert [len(state.history[t]) for t in ("purchase", "page_visited")] == [2, 4]
    assert state.memberships() == {"v": True}  # 2 purchases kept: never 3
