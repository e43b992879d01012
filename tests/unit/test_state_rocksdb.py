"""The evaluator's per-partition state layer on REAL RocksDB (Faust's
rocksdict store in a temporary directory), where ``memory://`` hides what
RocksDB does: it sorts keys by their JSON-encoded bytes, and it keeps what
older versions stored.

No broker: outputs and backfill continuations are captured, and batches are
driven by hand (``begin`` sets the event, ``end`` applies the write-behind
overlay to the tables, as the agent does after a batch).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import orjson
import pytest
from faust.types import TP

from agents.evaluator import Evaluator, EvaluatorHandle
from agents.partition_scan import encode_key, scan_partition
from app.faust_app import Tables, _declare_tables, _declare_topics
from app.metrics import Metrics
from app.settings import Settings
from engine import ContactState
from models.segments import SegmentDefinition

PARIS = {"id": "paris", "name": "Paris", "formula": 'city = "Paris"', "status": "live"}


class _Event:
    """What the tables need of the event a write happens under."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition, topic="test", offset=0)


def _done(value: Any = None) -> asyncio.Future:
    future = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


class _Output:
    """The evaluator's output producer: records what it would send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []

    async def send(self, topic: str, key: bytes, value: bytes | None, partition: int,
                   headers: Any = None) -> Any:
        self.sent.append((topic, key, value))
        return _done()


class _InputLog:
    """The evaluator-input topic, as far as backfill continuations go."""

    def __init__(self) -> None:
        self.queued: list[tuple[int, bytes]] = []

    async def send(self, *, key: bytes, value: bytes, partition: int, force: bool) -> Any:
        self.queued.append((partition, value))
        return _done()


class Worker:
    """One evaluator over real RocksDB tables, restartable on the same data."""

    def __init__(self, data_dir: Path, **settings: Any) -> None:
        self.settings = Settings(store="rocksdb://", data_dir=data_dir, clock="wall",
                                 **settings)
        self.app = faust.App("sf-state-test", store="rocksdb://", datadir=str(data_dir),
                             topic_partitions=self.settings.partitions,
                             Table="agents.buffered_tables:ChangelogTrackingTable")
        self.app.loop = asyncio.get_running_loop()
        topics = _declare_topics(self.app, self.settings)
        self.tables: Tables = _declare_tables(self.app, self.settings)
        self.app.finalize()
        # Faust iterates a table over the partitions assigned here, whose
        # databases it opened at the assignment (a worker holds them all here).
        actives = set()
        for table in vars(self.tables).values():
            for p in range(self.settings.partitions):
                actives.add(TP(table.changelog_topic.get_topic_name(), p))
                table.data._db_for_partition(p)
        self.app.assignor.assigned_actives = lambda: actives  # type: ignore[method-assign]
        self.metrics = Metrics()
        self.evaluator = Evaluator(self.app, topics, self.tables, self.settings, self.metrics)
        self.output = self.evaluator.output = _Output()  # type: ignore[assignment]
        self.log = _InputLog()
        self.evaluator.topics = SimpleNamespace(evaluator_input=self.log)  # type: ignore[assignment]

    def begin(self, partition: int = 0) -> None:
        self.evaluator.batch.event = _Event(partition)  # type: ignore[assignment]

    def end(self) -> None:
        """The end of a batch: the overlay reaches the tables."""
        self.evaluator.batch.apply()
        self.evaluator.pending.clear()

    def joined(self, segment_id: str) -> set[str]:
        found = set()
        for topic, _, value in self.output.sent:
            if topic == self.evaluator.changes_topic and value is not None:
                change = orjson.loads(value)
                if change["segment_id"] == segment_id and change["change"] == "joined":
                    found.add(change["contact_id"])
        return found

    async def run_backfills(self) -> None:
        """Process queued continuations, one batch each, until none is left."""
        while self.log.queued:
            partition, value = self.log.queued.pop(0)
            envelope = orjson.loads(value)
            self.begin(partition)
            await self.evaluator.handle(partition, envelope["kind"], envelope["body"])
            self.end()

    def store_raw(self, table: Any, partition: int, key: str, value: bytes) -> None:
        """Write bytes straight into a partition's RocksDB with Faust's key
        encoding: what an older version left in the store."""
        store = table.data
        store._db_for_partition(partition).put(store._encode_key(key), value)

    def close(self) -> None:
        for table in vars(self.tables).values():
            for db in table.data._dbs.values():
                db.close()
            table.data._dbs.clear()


@pytest.fixture
async def worker(tmp_path: Path) -> AsyncIterator[Any]:
    made: list[Worker] = []

    def make(**settings: Any) -> Worker:
        made.append(Worker(tmp_path, **settings))
        return made[-1]

    yield make
    for w in made:
        w.close()


# -- 1. one key order for scans, cursors and the overlay merge --------------------


async def test_encode_key_is_fausts_key_encoding_and_the_rocksdb_order(tmp_path: Path) -> None:
    """The order the scan, the cursors and the overlay merge use is the one
    RocksDB keeps, and it is not str order."""
    app = faust.App("sf-keys", store="rocksdb://", datadir=str(tmp_path))
    app.loop = asyncio.get_running_loop()
    settings = Settings(store="rocksdb://", data_dir=tmp_path, partitions=1)
    tables = _declare_tables(app, settings)
    store = tables.contacts.data
    keys = ['a"b', "aA", "a", "a!", "a b", "a\nb", "a\\b", "é", "z", "A-1.2:3@x+y_z"]
    db = store._db_for_partition(0)
    for key in keys:
        assert encode_key(key) == store._encode_key(key)
        db.put(store._encode_key(key), b"x")
    stored = [orjson.loads(k) for k in db.keys() if k != store.offset_key]  # noqa: SIM118
    assert stored == sorted(keys, key=encode_key)
    assert sorted(keys) != stored  # str order differs (e.g. 'a"b' < 'aA')
    db.close()


@pytest.mark.parametrize(("stored_id", "created_id"), [
    ('a"b', "aA"),   # '"' is escaped: b'"a\\"b"' sorts after b'"aA"'
    ("a\nb", "a9"),  # control characters too (b'\\n')
    ("a!", "a"),     # b'"a!"' < b'"a"' (was evaluated twice, the cursor went back)
])
async def test_golive_backfill_reaches_a_contact_created_in_the_same_batch(
        worker: Any, stored_id: str, created_id: str) -> None:
    """A go-live backfill right behind a new contact's first input (same
    batch, the contact is still in the write-behind overlay) must evaluate it
    even when the partition also holds a contact an older version stored
    under an id the current id pattern refuses (quotes, control characters,
    backslashes were allowed before models/ids.py). The overlay was merged in
    str order while the scan resumes in encoded-key order: the new contact
    fell between the two and was never evaluated for the segment."""
    w = worker(partitions=1, backfill_chunk=1)
    old = ContactState(stored_id, attrs={"city": "Paris"})
    w.store_raw(w.tables.contacts, 0, stored_id, old.to_bytes())

    w.begin()
    await w.evaluator.handle(0, "contact", {"contact_id": created_id,
                                            "attributes": {"city": "Paris"}})
    await w.evaluator.handle(0, "segment", PARIS)
    w.end()
    await w.run_backfills()

    assert w.joined("paris") == {stored_id, created_id}
    job = w.evaluator.backfill_progress(0, "paris")
    assert job is not None and job.complete
    assert job.scanned == 2  # each contact once


async def test_backfill_in_chunks_visits_every_stored_contact_once(worker: Any) -> None:
    """Chunked go-live over a partition whose keys sort differently as bytes
    and as str: every contact is evaluated exactly once."""
    w = worker(partitions=1, backfill_chunk=2)
    ids = ['a"b', "aA", "a", "a!", "a b", "a\nb", "a\\b", "B", "a-1", "a.2"]
    for contact_id in ids:
        w.store_raw(w.tables.contacts, 0, contact_id,
                    ContactState(contact_id, attrs={"city": "Paris"}).to_bytes())
    w.begin()
    await w.evaluator.handle(0, "segment", PARIS)
    w.end()
    await w.run_backfills()
    assert w.joined("paris") == set(ids)
    assert w.evaluator.backfill_progress(0, "paris").scanned == len(ids)
    keys = [k for k, _ in scan_partition(w.tables.contacts, 0, 1, None, 100)]
    assert keys == sorted(ids, key=encode_key)


# -- 2. a stored definition that cannot be loaded back ------------------------------


def _deep_definition(levels: int) -> bytes:
    """A definition as an older version stored it: ``levels`` nested ``not``
    (accepted before models/formula/limits.py; written here as raw bytes,
    past the model's checks)."""
    condition = SegmentDefinition.model_validate(PARIS).condition.model_dump(mode="json")
    for _ in range(levels - 1):
        condition = {"node": "not", "arg": condition}
    return orjson.dumps({"id": "deep", "name": "deep", "kind": "dynamic",
                         "condition": condition, "status": "live", "version": 1})


@pytest.mark.parametrize(("levels", "why"), [
    (220, "recursion limit exceeded"),  # past pydantic's JSON depth limit
    (40, "MAX_NESTING"),                # loads as JSON, refused by today's model
])
async def test_unloadable_stored_definition_is_quarantined_not_poisoning_its_partition(
        worker: Any, caplog: pytest.LogCaptureFixture, levels: int, why: str) -> None:
    """After a restart every input of a partition holding a definition that
    cannot be loaded back failed (the catalog rebuild raised) and was
    dead-lettered. Now that definition is left out with a reason, reported
    once, and the partition evaluates its other segments."""
    first = worker(partitions=1)
    first.begin()
    await first.evaluator.handle(0, "segment", PARIS)
    first.end()
    first.store_raw(first.tables.segments, 0, "0:deep", _deep_definition(levels))
    first.close()

    # After a restart the partition's catalog is rebuilt from the table.
    w = worker(partitions=1)
    w.begin()
    await w.evaluator.handle(0, "contact", {"contact_id": "c1", "attributes": {"city": "Paris"}})
    w.end()
    assert w.joined("paris") == {"c1"}  # the partition runs with its valid segment

    reason = w.evaluator.catalogs.quarantined(0).get("deep")
    assert reason is not None and reason.startswith("stored definition cannot be loaded")
    assert why in reason, reason
    assert "deep" not in w.evaluator.catalogs.get(0)
    reads = EvaluatorHandle(w.app, w.evaluator)
    reads.held_partitions = lambda: {0}  # type: ignore[method-assign]
    assert reads.segment_status("deep")[0]["quarantined"] == reason
    assert reads.segment_status("paris")[0]["quarantined"] is None

    # Reported once, also when a rebalance rebuilds the catalog again.
    w.evaluator.forget_caches()
    assert w.evaluator.catalogs.quarantined(0) == {"deep": reason}
    counted = w.metrics.registry.get_sample_value("segmentflow_segments_quarantined_total")
    assert counted == 1
    logged = [r for r in caplog.records if "quarantined" in r.getMessage()]
    assert len(logged) == 1 and "deep" in logged[0].getMessage()

    # A new version replaces the quarantined one.
    w.begin()
    await w.evaluator.handle(0, "segment", {"id": "deep", "name": "deep", "status": "live",
                                            "formula": 'not city = "Lyon"', "version": 2})
    w.end()
    assert w.evaluator.catalogs.quarantined(0) == {}
    assert w.joined("deep") == {"c1"}
    assert reads.segment_status("deep")[0] == {
        "version": 2, "backfill_version": 2, "contacts_scanned": 1,
        "backfill_complete": True, "quarantined": None, "refused": None}
