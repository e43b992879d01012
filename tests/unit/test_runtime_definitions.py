"""The batch evaluator's partitions on REAL RocksDB, driven without a broker
(``runtime.driver.Driver``): go-live backfills over stored contacts, stored
definitions that cannot be loaded back, refused definitions, the due index.

Ported from the tests of the removed Faust evaluator (test_state_rocksdb,
test_segment_refusals, test_due_index; issue #12 item 6), against the
runtime the worker runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.batch_evaluator import BatchEvaluatorHandle
from app.metrics import Metrics
from app.settings import Settings
from engine import ContactState
from models.segments import SegmentDefinition
from runtime.catalogs import CatalogCache
from runtime.driver import Driver
from runtime.keys import Keyspace, contact_key, stored_key
from runtime.processor import ProcessorConfig
from runtime.views import DueQueue
from tests.unit.runtime_backends import BACKENDS, open_store

PARIS = {"id": "paris", "name": "Paris", "status": "live", "formula": 'city = "Paris"',
         "version": 1}
LINKED = {"id": "linked", "name": "Linked", "kind": "compound", "status": "live",
          "formula": 'in segment "paris"', "version": 1}
# Version 2 of paris references linked, which references paris: a cycle.
PARIS_V2 = {**PARIS, "kind": "compound", "name": "Paris v2",
            "formula": 'in segment "linked"', "version": 2}
CYCLE = "segment reference cycle: paris -> linked -> paris"


@pytest.fixture
def make() -> Iterator[Any]:
    made: list[Driver] = []

    def driver(partitions: int = 1, backfill_chunk: int = 2000) -> Driver:
        config = ProcessorConfig(partitions=partitions, backfill_chunk=backfill_chunk)
        made.append(Driver(partitions, config=config, store="rocksdb", batch_size=100,
                           depth=0))
        return made[-1]

    yield driver
    for d in made:
        d.close()


def _store_raw(driver: Driver, partition: int, keyspace: Keyspace, key: bytes,
               value: bytes) -> None:
    """Bytes straight into a partition's RocksDB: what an older version left
    there (past today's checks)."""
    driver.processors[partition].store.base.write({stored_key(keyspace, key): value}, None)


def _reads(driver: Driver) -> BatchEvaluatorHandle:
    """The API's reads over the driver's partitions."""
    loop = SimpleNamespace(processors=driver.processors, consumer=None,
                           standbys=SimpleNamespace(lag=dict))  # no standby copies
    return BatchEvaluatorHandle(loop, partitions=driver.partitions,  # type: ignore[arg-type]
                                clock="wall", changelog="t.evaluator-state")


# -- go-live backfills over what the store holds ------------------------------------


@pytest.mark.parametrize(("stored_id", "created_id"), [
    ('a"b', "aA"),   # ids an older version allowed (quotes, control characters)
    ("a\nb", "a9"),
    ("a!", "a"),
])
def test_golive_backfill_reaches_a_contact_created_in_the_same_batch(
        make: Any, stored_id: str, created_id: str) -> None:
    """A go-live backfill right behind a new contact's first input (same
    batch: the contact is still in the transaction's overlay) evaluates it,
    next to a contact stored under an id today's pattern refuses: the scan
    and the overlay merge use one order (the Faust evaluator merged its
    overlay in str order and scanned in JSON-key order, and skipped one)."""
    d = make(backfill_chunk=1)
    _store_raw(d, 0, Keyspace.CONTACTS, contact_key(stored_id),
               ContactState(stored_id, attrs={"city": "Paris"}).to_bytes())
    d.send("contact", {"contact_id": created_id, "attributes": {"city": "Paris"}})
    d.send("segment", PARIS)
    d.run_until_idle()
    assert d.members()["paris"] == {stored_id, created_id}
    job = d.processors[0].backfill_progress("paris")
    assert job is not None and job.complete
    assert job.scanned == 2  # each contact once


def test_backfill_in_chunks_visits_every_stored_contact_once(make: Any) -> None:
    d = make(backfill_chunk=2)
    ids = ['a"b', "aA", "a", "a!", "a b", "a\nb", "a\\b", "B", "a-1", "a.2", "é", "z"]
    for contact_id in ids:
        _store_raw(d, 0, Keyspace.CONTACTS, contact_key(contact_id),
                   ContactState(contact_id, attrs={"city": "Paris"}).to_bytes())
    d.send("contact", {"contact_id": "a0", "attributes": {"city": "Paris"}})
    d.send("segment", PARIS)
    d.run_until_idle()
    assert d.members()["paris"] == {*ids, "a0"}
    assert [c.contact_id for c in d.outputs].count("a0") == 1
    job = d.processors[0].backfill_progress("paris")
    assert job is not None and job.complete and job.scanned == len(ids) + 1


# -- a stored definition that cannot be loaded back ---------------------------------


def _deep_definition(levels: int) -> bytes:
    """A definition as an older version stored it: ``levels`` nested ``not``
    (accepted before models/formula/limits.py)."""
    condition = SegmentDefinition.model_validate(PARIS).condition.model_dump(mode="json")
    for _ in range(levels - 1):
        condition = {"node": "not", "arg": condition}
    return orjson.dumps({"id": "deep", "name": "deep", "kind": "dynamic",
                         "condition": condition, "status": "live", "version": 1})


@pytest.mark.parametrize(("levels", "why"), [
    (220, "recursion limit exceeded"),  # past pydantic's JSON depth limit
    (40, "MAX_NESTING"),                # loads as JSON, refused by today's model
])
def test_unloadable_stored_definition_is_quarantined_not_poisoning_its_partition(
        make: Any, caplog: pytest.LogCaptureFixture, levels: int, why: str) -> None:
    """After a restart the partition's catalog is rebuilt from its store: a
    definition that cannot be loaded back is left out with a reason, and
    the partition evaluates its other segments."""
    d = make()
    d.send("segment", PARIS)
    d.run_until_idle()
    _store_raw(d, 0, Keyspace.SEGMENTS, b"deep", _deep_definition(levels))
    with caplog.at_level(logging.ERROR, logger="runtime.catalogs"):
        d.restart()
    d.send("contact", {"contact_id": "c1", "attributes": {"city": "Paris"}})
    d.run_until_idle()
    assert d.members()["paris"] == {"c1"}  # the partition runs with its valid segment
    assert not d.dead_letters

    processor = d.processors[0]
    reason = processor.quarantined.get("deep")
    assert reason is not None and reason.startswith("stored definition cannot be loaded")
    assert why in reason, reason
    assert "deep" not in processor.catalog
    reads = _reads(d)
    assert reads.segment_status("deep")[0]["quarantined"] == reason
    assert reads.segment_status("paris")[0]["quarantined"] is None
    logged = [r for r in caplog.records if "quarantined" in r.getMessage()]
    assert len(logged) == 1 and "deep" in logged[0].getMessage()

    # A new version replaces the quarantined one.
    d.send("segment", {"id": "deep", "name": "deep", "status": "live",
                       "formula": 'not city = "Lyon"', "version": 2})
    d.run_until_idle()
    assert d.processors[0].quarantined == {}
    assert d.members()["deep"] == {"c1"}
    assert reads.segment_status("deep")[0] == {
        "version": 2, "backfill_version": 2, "contacts_scanned": 1,
        "backfill_complete": True, "quarantined": None, "refused": None}


def test_a_quarantine_is_reported_once_per_worker() -> None:
    """Partitions (and rebalances) rebuild catalogs from the same stored
    definitions: one report, one count."""
    reported: list[tuple[str, str]] = []
    cache = CatalogCache(on_quarantine=lambda sid, why: reported.append((sid, why)))
    stored = [("deep", _deep_definition(220)), ("paris", orjson.dumps(PARIS))]
    for _ in range(3):
        catalog, quarantined = cache.build(stored)
        assert list(catalog) == ["paris"] and list(quarantined) == ["deep"]
    cache.build(list(reversed(stored)))  # another partition, another order
    assert [sid for sid, _ in reported] == ["deep"]


def test_the_worker_counts_quarantined_definitions(tmp_path: Path) -> None:
    """app/batch_evaluator.py wires the catalogs' reports to
    ``segmentflow_segments_quarantined_total``."""
    from app.batch_evaluator import register_batch_evaluator
    from app.faust_app import _declare_topics

    settings = Settings(topic_prefix="quarantine-test", partitions=1, data_dir=tmp_path)
    app = faust.App("quarantine-test", datadir=str(tmp_path))
    metrics = Metrics()
    handle = register_batch_evaluator(app, _declare_topics(app, settings), settings, metrics)
    catalogs = handle._loop.catalogs
    try:
        catalogs.build([("deep", _deep_definition(220))])
        catalogs.build([("deep", _deep_definition(220))])
        assert metrics.registry.get_sample_value("segmentflow_segments_quarantined_total") == 1
    finally:
        handle._loop._store.close()


# -- refused definitions ------------------------------------------------------------


def test_a_refused_definition_is_recorded_and_the_previous_stays_in_force(make: Any) -> None:
    """Issue #14: applied or visibly refused, never in between; the refusal
    survives a restart and a later version clears it."""
    d = make(partitions=2)
    d.send("segment", PARIS)
    d.send("segment", LINKED)
    d.send("segment", PARIS_V2)
    d.run_until_idle()
    # every partition refuses the broadcast; one dead letter says so
    assert [why for _, _, why in d.dead_letters] == [f"segment refused: {CYCLE}"]

    reads = _reads(d)
    metrics = Metrics()
    metrics.watch(reads)
    refusal = {"version": 2, "reason": CYCLE}
    assert reads.refusals() == {"paris": refusal}
    status = reads.segment_status("paris")
    assert {p: (s["version"], s["refused"]) for p, s in status.items()} == {
        0: (1, refusal), 1: (1, refusal)}
    assert reads.segment_status("linked")[0]["refused"] is None
    assert reads.definitions()["paris"].formula == 'city = "Paris"'  # v1 in force
    assert metrics.registry.get_sample_value("segmentflow_segments_refused") == 1

    # A restart keeps the refusal (it is stored, not only in memory); the
    # catalog rebuild leaves it out.
    d.restart()
    reads = _reads(d)
    assert reads.refusals() == {"paris": refusal}
    assert sorted(d.processors[0].catalog) == ["linked", "paris"]
    assert d.processors[0].quarantined == {}

    # A later version that is applied clears it.
    d.send("segment", {**PARIS, "version": 3})
    d.run_until_idle()
    assert reads.refusals() == {}
    assert reads.segment_status("paris")[1]["refused"] is None
    metrics = Metrics()
    metrics.watch(reads)
    metrics.exposition()
    assert metrics.registry.get_sample_value("segmentflow_segments_refused") == 0


def test_a_delete_clears_the_refusal_of_a_segment_never_applied(make: Any) -> None:
    d = make(partitions=2)
    d.send("segment", PARIS)
    d.send("segment", LINKED)
    # "loop" never existed: refused at version 1, nothing of it is in force.
    loop = {"id": "loop", "name": "Loop", "kind": "compound", "status": "live",
            "formula": 'in segment "linked"', "version": 1}
    d.send("segment", {**LINKED, "formula": 'in segment "loop"', "version": 2})
    d.send("segment", loop)
    d.run_until_idle()
    reads = _reads(d)
    assert "loop" not in reads.definitions()
    assert reads.refusals() == {"loop": {
        "version": 1, "reason": "segment reference cycle: loop -> linked -> loop"}}
    d.send("segment_delete", {"op": "delete", "segment_id": "loop"})
    d.run_until_idle()
    assert reads.refusals() == {}


# -- the due index --------------------------------------------------------------------


ops = st.lists(st.tuples(st.sampled_from(["set", "clear", "pop", "commit"]),
                         st.integers(0, 30), st.integers(0, 3000)), max_size=300)


@pytest.mark.parametrize("kind", BACKENDS)
@settings(max_examples=40, deadline=None)
@given(steps=ops)
def test_due_pops_equal_a_naive_dict(tmp_path_factory: pytest.TempPathFactory, kind: str,
                                     steps: list[tuple[str, int, int]]) -> None:
    """The partition's due index (keys in time order, woken by a range scan,
    across committed transactions and the current one's overlay) answers as
    a plain dict of due times does."""
    store = open_store(kind, tmp_path_factory.mktemp("due"))
    try:
        part = store.assign(0)
        earliest: list[int | None] = [DueQueue._UNKNOWN]
        txn = part.begin()
        naive: dict[str, int] = {}
        for op, n, at in steps:
            due = DueQueue(txn, earliest)
            contact = f"c{n}"
            if op == "set":
                due.set(contact, naive.get(contact), at)
                naive[contact] = at
            elif op == "clear":
                due.set(contact, naive.pop(contact, None), None)
            elif op == "pop":
                popped = due.pop_due(at, 10**6)
                expected = sorted(c for c, t in naive.items() if t <= at)
                assert sorted(popped) == expected
                for c in expected:
                    del naive[c]
            else:
                txn.flush(None)
                txn = part.begin()
        rest = DueQueue(txn, earliest).pop_due(10**6, 10**6)
        assert sorted(rest) == sorted(naive)
        txn.close()
    finally:
        store.close()


# -- the decoded-state cache across batches ---------------------------------------------


def test_a_failed_batch_leaves_no_state_in_the_cache(
        make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Contacts' decoded states are kept across batches (runtime/processor.py);
    # a batch whose staging fails loses its writes, so the states it cached
    # must go too, or the next batch would build on a state the store lacks.
    driver = make()
    driver.send("segment", PARIS)
    driver.send("contact", {"contact_id": "c1", "attributes": {"city": "Paris"}})
    driver.run()
    processor = driver.processors[0]
    real_stage = processor.store.stage

    def failing_stage(records: Any) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(processor.store, "stage", failing_stage)
    with pytest.raises(OSError):
        processor.process([("contact", {"contact_id": "c1", "attributes": {"city": "Rome"}})])
    monkeypatch.setattr(processor.store, "stage", real_stage)
    driver.send("contact", {"contact_id": "c1", "attributes": {"age": 40}})
    driver.run()
    assert driver.members() == {"paris": {"c1"}}  # still in Paris: the Rome batch never was
    stored = processor.store.base.get(stored_key(Keyspace.CONTACTS, contact_key("c1")))
    assert stored is not None
    assert ContactState.from_bytes(stored).attrs == {"city": "Paris", "age": 40}
