"""End-to-end benchmark: one worker on the real broker, measured from outside.

    .venv/bin/python bench/e2e_bench.py [--segments 100] [--events 40000]

1. Sustained throughput: a backlog of interactions is produced first, then
   the worker is started; the time from "ready" until the last input of every
   partition has been evaluated (a marker per partition, ordered behind the
   backlog) gives events/s.
2. Latency at steady load: interactions at half that rate, each stamped
   with its produce time; for every change it causes (cause.ref = event_id),
   latency = time the change is read by a consumer - produce time.

The pieces live in bench/harness.py (bench/run.py runs every scenario).
Prints the result and writes bench/results/e2e.json. Not a test: nothing
fails because the machine is slow.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import RESULTS, service_run, start_broker


async def run(segments: int, events: int, partitions: int, latency_seconds: float,
              contacts: int = 10_000) -> dict:
    result = await service_run(start_broker(), segments, contacts, events,
                               partitions=partitions, latency_seconds=latency_seconds)
    result["when"] = datetime.now(UTC).isoformat()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segments", type=int, default=100)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    args = parser.parse_args()
    result = asyncio.run(run(args.segments, args.events, args.partitions,
                             args.latency_seconds, args.contacts))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "e2e.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
