"""Produce -> change latency at several fixed input rates (one worker, the
100-segment catalogue, 4,000 contacts), to see where the service saturates
when the load generator shares the 2 cores with the worker and the broker.

    .venv/bin/python bench/latency_sweep.py [--rates 500 1000 2000] [--seconds 8]
                                            [--ingest-process]

bench/run.py measures latency at half of the backlog throughput; on this
machine that load already saturates the worker once the publishing process
competes for the same cores, so this sweep gives the curve. Prints one line
per rate and writes bench/results/latency_sweep.json. ``--ingest-process``:
ingest in a process of its own (SEGMENTFLOW_ROLE, docs/architecture.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    RESULTS,
    Scenario,
    make_workload,
    measure_latency,
    prepare,
    start_broker,
    wait_idle,
)

from tools.wide_mix import wide_segment_mix


async def run(rates: list[float], seconds: float, contacts: int,
              ingest_process: bool = False) -> dict:
    sc = Scenario(start_broker(), partitions=4, name="latsweep", ingest_process=ingest_process)
    try:
        setup, _ = make_workload(contacts, 100)
        await prepare(sc, [m.definition for m in wide_segment_mix(100)], setup)
        await sc.start_worker()
        await wait_idle(sc)
        points = []
        for rate in rates:
            result = await measure_latency(sc, rate, seconds, contacts)
            points.append({"rate": rate, "latency_ms": result["latency_ms"]})
            print(rate, result["latency_ms"], flush=True)
        return {"when": datetime.now(UTC).isoformat(), "segments_live": 100,
                "contacts": contacts, "partitions": 4, "ingest_process": ingest_process,
                "points": points}
    finally:
        sc.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--contacts", type=int, default=4000)
    parser.add_argument("--ingest-process", action="store_true",
                        help="ingest in a process of its own (SEGMENTFLOW_ROLE=ingest)")
    args = parser.parse_args()
    result = asyncio.run(run(args.rates, args.seconds, args.contacts, args.ingest_process))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latency_sweep.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
