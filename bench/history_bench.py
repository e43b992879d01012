"""Retained history: what it costs and how fast a segment goes live over it.

Broker-free: the worker's partition processors over real RocksDB stores
(runtime.processor, runtime.staged, runtime.store), each batch committed at
once (no Kafka round trips, no changelog kept: runtime.driver keeps the
whole changelog in memory for its fault tests, too much at this size).
``contacts`` contacts with ``events`` purchases each, spread over a year,
loaded with NO segment defined; then, timed one after the other on the
loaded partitions:

- a profile segment going live (reads no history: the baseline backfill);
- a behavioural segment going live over the retained history
  ("at least 3 purchases in 180 days"), and one with a sum over all of it;
- widening a live window (30 -> 90 days);

and, through the API's reads (agents.batch_evaluator.BatchEvaluatorHandle,
what ``POST /preview`` and ``POST /backtest`` run on each worker), the
impact preview of an edit of a live segment and a 30-day backtest.

Reports load rate, archive bytes per 100k contacts (raw key+value bytes and
the RocksDB directory size after the stores are closed, LZ4-compressed) and
the go-live rates in contacts/s per worker process (all partitions in one
process, one after the other, as one worker holds them). Usage:

    .venv/bin/python bench/history_bench.py [contacts] [events] [partitions]
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.batch_evaluator import BatchEvaluatorHandle
from engine import Limits
from models.segments import SegmentDefinition
from runtime.catalogs import CatalogCache
from runtime.keys import Keyspace
from runtime.partitioning import partition_for
from runtime.processor import PartitionProcessor, ProcessorConfig
from runtime.staged import StagedStore
from runtime.store import Store

END = datetime(2026, 6, 1, tzinfo=UTC)
BATCH = 500


def _inputs(contacts: int, events: int, seed: int = 7) -> Iterator[tuple[str, dict[str, Any]]]:
    rng = random.Random(seed)
    for c in range(contacts):
        yield "contact", {"contact_id": f"c{c:07d}", "attributes": {
            "city": rng.choice(["Paris", "Lyon", "Leeds", "Berlin"]), "age": rng.randint(18, 80)},
            "updated_at": (END - timedelta(days=365)).isoformat()}
    moments = sorted((rng.random() * 365, c, n) for c in range(contacts) for n in range(events))
    for age, c, n in reversed(moments):  # oldest first, contacts interleaved
        yield "interaction", {
            "event_id": f"c{c:07d}-{n}", "contact_id": f"c{c:07d}", "type": "purchase",
            "occurred_at": (END - timedelta(days=age)).isoformat(),
            "properties": {"amount": round(rng.uniform(1, 200), 2),
                           "sku": f"sku-{rng.randint(1, 5000)}", "channel": "web"}}


class Partitions:
    """The processors of one worker, fed batch by batch, committed at once."""

    def __init__(self, path: Path, partitions: int) -> None:
        self.path, self.partitions = path, partitions
        self.config = ProcessorConfig(partitions=partitions, clock="event", backfill_chunk=2000)
        self.members: dict[str, set[str]] = {}
        self._offsets = [0] * partitions
        self._open()

    def _open(self) -> None:
        self.store = Store(self.path, cache_bytes=64 << 20, write_buffer_bytes=4 << 20)
        catalogs = CatalogCache(Limits(history_retention_us=self.config.retention_us))
        self.processors = [
            PartitionProcessor(StagedStore(self.store.assign(p)), self.config, catalogs,
                               lambda: END)
            for p in range(self.partitions)]

    def reopen(self) -> None:
        self.store.close()
        self._open()

    def close(self) -> None:
        self.store.close()

    def _run(self, p: int, inputs: list[tuple[str, dict[str, Any]]]) -> None:
        processor = self.processors[p]
        last = self._offsets[p] + len(inputs) - 1 if inputs else None
        batch = processor.process(inputs, last)
        processor.store.commit(batch.seq, None)
        self._offsets[p] += len(inputs)
        for change in batch.changes:
            members = self.members.setdefault(change.segment_id, set())
            if change.change == "joined":
                members.add(change.contact_id)
            else:
                members.discard(change.contact_id)

    def feed(self, envelopes: Iterator[tuple[str, dict[str, Any]]]) -> int:
        pending: list[list[tuple[str, dict[str, Any]]]] = [[] for _ in self.processors]
        n = 0
        for kind, body in envelopes:
            n += 1
            if kind in ("segment", "clock"):
                targets: Any = range(self.partitions)
            else:
                targets = (partition_for(body["contact_id"], self.partitions),)
            for p in targets:
                pending[p].append((kind, body))
                if len(pending[p]) >= BATCH:
                    self._run(p, pending[p])
                    pending[p] = []
        for p, rest in enumerate(pending):
            if rest:
                self._run(p, rest)
        self.settle()
        return n

    def settle(self) -> None:
        """Empty batches until no backfill runs (the worker's loop does the same)."""
        while any(processor.backfills for processor in self.processors):
            for p, processor in enumerate(self.processors):
                if processor.backfills:
                    self._run(p, [])


def _segment(sid: str, formula: str, version: int = 1) -> dict[str, Any]:
    return {"id": sid, "name": sid, "status": "live", "version": version, "formula": formula}


def _go_live(parts: Partitions, contacts: int, body: dict[str, Any]) -> dict[str, float]:
    start = time.perf_counter()
    parts.feed(iter([("segment", body)]))
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2), "contacts_per_s": round(contacts / seconds)}


def _reads(parts: Partitions) -> dict[str, Any]:
    """Impact preview and backtest timed through the API's read code."""
    loop = SimpleNamespace(processors=dict(enumerate(parts.processors)),
                           settings=SimpleNamespace(processor=parts.config))
    reads = BatchEvaluatorHandle(loop, partitions=parts.partitions,  # type: ignore[arg-type]
                                 clock="event", changelog="")
    edit = SegmentDefinition(id="buyers", name="buyers", status="live",
                             formula="performed purchase at least 5 times within last 90 days")
    start = time.perf_counter()
    preview = asyncio.run(reads.preview(edit, 10))
    preview_s = time.perf_counter() - start
    days = [END - timedelta(days=n) for n in range(29, -1, -1)]
    start = time.perf_counter()
    backtest = asyncio.run(reads.backtest(edit, days, 10))
    backtest_s = time.perf_counter() - start
    return {
        "impact_preview": {"seconds": round(preview_s, 2), "size": preview.size,
                           "join": preview.joins, "leave": preview.leaves},
        "backtest_30_days": {"seconds": round(backtest_s, 2),
                             "first_last_size": [backtest.sizes[0], backtest.sizes[-1]]},
    }


def _archive_bytes(parts: Partitions) -> int:
    total = 0
    for processor in parts.processors:
        txn = processor.store.begin()
        try:
            total += sum(len(k) + len(v) for k, v in txn.scan_range(Keyspace.ARCHIVE))
        finally:
            txn.close()
    return total


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run(contacts: int = 100_000, events: int = 20, partitions: int = 4) -> dict[str, Any]:
    path = Path(tempfile.mkdtemp(prefix="segmentflow-history-bench-"))
    parts = Partitions(path, partitions)
    try:
        start = time.perf_counter()
        n = parts.feed(_inputs(contacts, events))
        parts.feed(iter([("clock", {"to": END.isoformat()})]))
        load_s = time.perf_counter() - start
        raw = _archive_bytes(parts)
        parts.reopen()  # closed: memtables flushed to SST files
        on_disk = _dir_bytes(path)
        per_100k = 100_000 / contacts
        result: dict[str, Any] = {
            "contacts": contacts, "events_per_contact": events, "partitions": partitions,
            "load_inputs_per_s": round(n / load_s),
            "archive_raw_bytes_per_100k_contacts": round(raw * per_100k),
            "store_dir_bytes_per_100k_contacts": round(on_disk * per_100k),
        }
        result["go_live_profile"] = _go_live(
            parts, contacts, _segment("paris", 'city = "Paris" and age between 30 and 50'))
        result["go_live_over_history"] = _go_live(parts, contacts, _segment(
            "buyers", "performed purchase at least 3 times within last 180 days"))
        result["go_live_over_history_sum_ever"] = _go_live(
            parts, contacts, _segment("spenders", "sum amount of purchase ever >= 2000"))
        parts.feed(iter([("segment", _segment(
            "active", "performed purchase within last 30 days"))]))
        result["widen_30_to_90_days"] = _go_live(parts, contacts, _segment(
            "active", "performed purchase within last 90 days", version=2))
        result["members"] = {sid: len(parts.members.get(sid, ())) for sid in
                             ("paris", "buyers", "spenders", "active")}
        result.update(_reads(parts))
        return result
    finally:
        parts.close()
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    from datetime import datetime as _datetime

    out = run(*[int(a) for a in sys.argv[1:]])
    out["when"] = _datetime.now(UTC).isoformat(timespec="seconds")
    out["command"] = "bench/history_bench.py " + " ".join(sys.argv[1:])
    results = Path(__file__).resolve().parent / "results" / "history_bench.json"
    results.write_text(json.dumps(out, indent=2) + "\n")  # bench/run.py's SUMMARY shows it
    print(json.dumps(out, indent=2))
