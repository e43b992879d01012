"""Worker RSS with 100,000 contacts actually loaded (not extrapolated).

    .venv/bin/python bench/memory_bench.py [--contacts 100000] [--steps 4]
                                           [--events-per-contact 5]

bench/run.py's "RSS per 100k contacts" divides (RSS after a 4,000-contact
backlog - RSS of an empty worker) by 4,000: the fixed costs a loaded worker
has at any size (RocksDB memtables and block cache, the compiled catalogue,
fetch buffers, allocator arenas) are extrapolated as if they grew with every
contact. Here one worker (4 partitions, the 100-segment wide mix + marker)
loads the contacts of tools/workload.py in ``--steps`` equal steps, each
contact with ~``--events-per-contact`` interactions over the last 20 days;
after each step it waits until the worker evaluated everything and records
the worker's RSS and RocksDB bytes. Reports the RSS at the full count (what
an operator sizes a pod by) and the growth per 100,000 contacts between the
first and last step (what each further contact costs). Writes
bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    MARKER,
    RESULTS,
    Scenario,
    make_workload,
    marker_inputs,
    start_broker,
    wait_applied,
    wait_markers,
)

from app.client import Publisher
from tools.wide_mix import wide_segment_mix

MB = 2**20


def _by_contact(setup: list, backlog: list, steps: int, contacts: int) -> list[list]:
    """The inputs split into ``steps`` groups of whole contacts (accounts in
    the first), each contact's interactions with it."""
    def step_of(contact_id: str) -> int:
        number = int("".join(ch for ch in contact_id if ch.isdigit()) or 0)
        return min(steps - 1, number * steps // contacts)

    groups: list[list] = [[] for _ in range(steps)]
    for model in setup:
        contact_id = getattr(model, "contact_id", None)
        groups[0 if contact_id is None else step_of(contact_id)].append(model)
    for model in backlog:
        groups[step_of(model.contact_id)].append(model)
    return groups


async def run(contacts: int, steps: int, events_per_contact: int) -> dict:
    sc = Scenario(start_broker(), partitions=4, name="memory")
    try:
        setup, backlog = make_workload(contacts, contacts * events_per_contact)
        groups = _by_contact(setup, backlog, steps, contacts)
        definitions = [*[m.definition for m in wide_segment_mix(100)], MARKER]
        await sc.start_worker()
        assert sc.worker is not None
        async with Publisher(sc.settings) as pub:
            for d in definitions:
                await pub.send(d)
            await pub.flush()
        await wait_applied(sc.worker, definitions, sc.partitions)
        points = [{"contacts": 0, "inputs": 0, "rss_mb": round(sc.worker_rss_bytes() / MB, 1),
                   "rocksdb_mb": round(sc.data_dir_bytes() / MB, 1), "seconds": 0.0}]
        print(points[-1], flush=True)
        inputs = 0
        for number, group in enumerate(groups):
            tag = f"mem{number}"
            t0 = time.monotonic()
            async with Publisher(sc.settings) as pub:
                await pub.send_all(group + marker_inputs(sc.partitions, datetime.now(UTC), tag,
                                                         contacts_too=True))
            await wait_markers(sc.settings, tag, 2 * sc.partitions, timeout=1800)
            inputs += len(group)
            points.append({
                "contacts": (number + 1) * contacts // steps, "inputs": inputs,
                "rss_mb": round(sc.worker_rss_bytes() / MB, 1),
                "rocksdb_mb": round(sc.data_dir_bytes() / MB, 1),
                "seconds": round(time.monotonic() - t0, 1)})
            print(points[-1], flush=True)
        first, last = points[1], points[-1]
        per_100k = ((last["rss_mb"] - first["rss_mb"])
                    / (last["contacts"] - first["contacts"]) * 100_000)
        return {
            "when": datetime.now(UTC).isoformat(), "segments_live": len(definitions),
            "partitions": sc.partitions, "contacts": contacts,
            "interactions": len(backlog), "points": points,
            "rss_mb_at_full": last["rss_mb"],
            "rss_mb_growth_per_100k_contacts": round(per_100k, 1),
            "rss_mb_empty_worker": points[0]["rss_mb"],
        }
    finally:
        sc.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--events-per-contact", type=int, default=5)
    args = parser.parse_args()
    result = asyncio.run(run(args.contacts, args.steps, args.events_per_contact))
    print(f"RSS with {args.contacts:,} contacts: {result['rss_mb_at_full']} MB "
          f"(empty worker {result['rss_mb_empty_worker']} MB); growth per 100k contacts "
          f"{result['rss_mb_growth_per_100k_contacts']} MB")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "memory.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
