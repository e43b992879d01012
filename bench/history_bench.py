"""Retained history: what it costs and how fast a segment goes live over it.

Broker-free (``runtime.driver.Driver`` over real RocksDB, the worker's
processor and stores, no Kafka round trips): ``contacts`` contacts with
``events`` purchases each, spread over a year, loaded with NO segment
defined; then, timed one after the other on the loaded partitions:

- a profile segment going live (reads no history: the baseline backfill);
- a behavioural segment going live over the retained history
  ("at least 3 purchases in 180 days" + a sum over a year);
- widening a live window (30 -> 90 days).

Reports load rate, archive bytes per 100k contacts (raw key+value bytes and
the RocksDB directory size after a flush, LZ4-compressed) and the go-live
rates in contacts/s per worker process. Usage:

    .venv/bin/python bench/history_bench.py [contacts] [events] [partitions]
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.driver import Driver
from runtime.keys import Keyspace
from runtime.processor import ProcessorConfig

END = datetime(2026, 6, 1, tzinfo=UTC)


def _inputs(contacts: int, events: int, seed: int = 7) -> list[tuple[str, dict[str, Any]]]:
    rng = random.Random(seed)
    out: list[tuple[str, dict[str, Any]]] = []
    for c in range(contacts):
        cid = f"c{c:07d}"
        out.append(("contact", {"contact_id": cid, "attributes": {
            "city": rng.choice(["Paris", "Lyon", "Leeds", "Berlin"]), "age": rng.randint(18, 80)},
            "updated_at": (END - timedelta(days=365)).isoformat()}))
    moments = sorted((rng.random() * 365, c, n) for c in range(contacts) for n in range(events))
    for age, c, n in reversed(moments):  # oldest first, contacts interleaved
        out.append(("interaction", {
            "event_id": f"c{c:07d}-{n}", "contact_id": f"c{c:07d}", "type": "purchase",
            "occurred_at": (END - timedelta(days=age)).isoformat(),
            "properties": {"amount": round(rng.uniform(1, 200), 2),
                           "sku": f"sku-{rng.randint(1, 5000)}", "channel": "web"}}))
    return out


def _segment(sid: str, formula: str, version: int = 1) -> dict[str, Any]:
    return {"id": sid, "name": sid, "status": "live", "version": version, "formula": formula}


def _go_live(driver: Driver, contacts: int, *bodies: dict[str, Any]) -> dict[str, float]:
    start = time.perf_counter()
    for body in bodies:
        driver.send("segment", body)
    driver.run_until_idle()
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2), "contacts_per_s": round(contacts / seconds)}


def _archive_bytes(driver: Driver) -> int:
    total = 0
    for processor in driver.processors.values():
        txn = processor.store.begin()
        try:
            total += sum(len(k) + len(v) for k, v in txn.scan_range(Keyspace.ARCHIVE))
        finally:
            txn.close()
    return total


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run(contacts: int = 100_000, events: int = 20, partitions: int = 4) -> dict[str, Any]:
    inputs = _inputs(contacts, events)
    config = ProcessorConfig(partitions=partitions, clock="event", backfill_chunk=2000)
    driver = Driver(partitions, config=config, store="rocksdb", batch_size=500, depth=2)
    try:
        start = time.perf_counter()
        for kind, body in inputs:
            driver.send(kind, body)
        driver.send("clock", {"to": END.isoformat()})
        driver.run_until_idle()
        load_s = time.perf_counter() - start
        driver.outputs.clear()
        raw = _archive_bytes(driver)
        driver.restart(keep_local=True)  # closes the stores: memtables flushed to SST files
        on_disk = _dir_bytes(driver._dir)
        per_100k = 100_000 / contacts
        result: dict[str, Any] = {
            "contacts": contacts, "events_per_contact": events, "partitions": partitions,
            "load_inputs_per_s": round(len(inputs) / load_s),
            "archive_raw_bytes_per_100k_contacts": round(raw * per_100k),
            "store_dir_bytes_per_100k_contacts": round(on_disk * per_100k),
        }
        result["go_live_profile"] = _go_live(
            driver, contacts, _segment("paris", 'city = "Paris" and age between 30 and 50'))
        result["go_live_over_history"] = _go_live(
            driver, contacts,
            _segment("buyers", "performed purchase at least 3 times within last 180 days"),
        )
        result["go_live_over_history_sum_ever"] = _go_live(
            driver, contacts, _segment("spenders", "sum amount of purchase ever >= 2000"))
        driver.send("segment", _segment("active", "performed purchase within last 30 days"))
        driver.run_until_idle()
        result["widen_30_to_90_days"] = _go_live(
            driver, contacts,
            _segment("active", "performed purchase within last 90 days", version=2))
        members = driver.members()
        result["members"] = {sid: len(members.get(sid, ())) for sid in
                             ("paris", "buyers", "spenders", "active")}
        return result
    finally:
        driver.close()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    os.environ.setdefault("PYTHONHASHSEED", "0")
    print(json.dumps(run(*args), indent=2))
