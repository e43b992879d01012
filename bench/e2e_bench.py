"""End-to-end benchmark: one worker on the real broker, measured from outside.

    .venv/bin/python bench/e2e_bench.py [--segments 100] [--events 40000]

1. Sustained throughput: a backlog of interactions is produced first, then
   the worker is started; the time from "ready" until the last input of every
   partition has been evaluated (a marker per partition, ordered behind the
   backlog) gives events/s.
2. Latency at steady load: interactions at half that rate, each stamped
   with its produce time; for every change it causes (cause.ref = event_id),
   latency = time the change is read by a consumer - produce time.

Prints a table and writes bench/results/e2e.json. Not a test: nothing fails
because the machine is slow.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.client import Publisher, tail  # noqa: E402
from app.partitioning import partition_for  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.worker_process import WorkerProcess  # noqa: E402
from app.workload import Workload, segment_mix  # noqa: E402
from models.inputs import Interaction  # noqa: E402
from models.segments import SegmentDefinition  # noqa: E402

RESULTS = ROOT / "bench/results"


def start_broker() -> str:
    out = subprocess.run(["bash", str(ROOT / "deploy/kafka/kafka.sh"), "start"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


async def wait_applied(worker: WorkerProcess, definitions: list[SegmentDefinition],
                       partitions: int) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        for d in definitions:
            while True:
                async with session.get(f"{worker.url}/segments/{d.id}/status") as r:
                    parts = (await r.json())["partitions"]
                if len(parts) == partitions and all(
                        p["version"] == d.version and p["backfill_complete"]
                        for p in parts.values()):
                    break
                await asyncio.sleep(0.05)


def marker_inputs(partitions: int, at: datetime, tag: str) -> list[Interaction]:
    markers, taken, n = [], set(), 0
    while len(taken) < partitions:
        cid = f"marker-{tag}-{n}"
        p = partition_for(cid, partitions)
        if p not in taken:
            taken.add(p)
            markers.append(Interaction(event_id=f"{tag}-{n}", contact_id=cid,
                                       type="survey_answered", occurred_at=at,
                                       properties={"marker": tag}))
        n += 1
    return markers


async def wait_markers(settings: Settings, tag: str, count: int, timeout: float = 600) -> float:
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    async for _, value in tail(settings, settings.topics.membership_changes):
        if value is not None:
            change = orjson.loads(value)
            if change["segment_id"] == "bench-marker" and change["contact_id"].startswith(
                    f"marker-{tag}-"):
                seen.add(change["contact_id"])
                if len(seen) == count:
                    return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError("markers not seen")
    raise AssertionError("unreachable")


async def run(segments: int, events: int, partitions: int, latency_seconds: float) -> dict:
    bootstrap = start_broker()
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    data = Path(tempfile.mkdtemp(prefix="segmentflow-bench-"))
    settings = Settings(bootstrap_servers=bootstrap, topic_prefix=prefix, partitions=partitions,
                        data_dir=data / "worker", web_port=6190, log_level="warning")
    marker = SegmentDefinition(id="bench-marker", name="marker", status="live",
                               formula="performed survey_answered where marker exists ever")
    definitions = [*segment_mix(segments), marker]
    workload = Workload(contacts=10_000, accounts=100, events=events, seed=3,
                        start=datetime.now(UTC) - timedelta(days=20))
    all_inputs = list(workload.inputs())
    setup = [i for i in all_inputs if not isinstance(i, Interaction)]
    backlog = [i for i in all_inputs if isinstance(i, Interaction)]

    worker = WorkerProcess(settings, data / "worker.log")
    worker.start()
    await worker.wait_ready()
    async with Publisher(settings) as pub:
        for d in definitions:
            await pub.send(d)
        await pub.flush()
        await wait_applied(worker, definitions, partitions)
        await pub.send_all(setup + marker_inputs(partitions, datetime.now(UTC), "setup"))
    await wait_markers(settings, "setup", partitions)
    worker.stop()

    # 1. sustained throughput on a backlog
    async with Publisher(settings) as pub:
        await pub.send_all(backlog + marker_inputs(partitions, datetime.now(UTC), "bulk"))
    worker = WorkerProcess(settings, data / "worker.log")
    worker.start()
    ready_at = time.monotonic() + 0.0
    await worker.wait_ready()
    ready_at = time.monotonic()
    done_at = await wait_markers(settings, "bulk", partitions)
    throughput = (len(backlog) + partitions) / (done_at - ready_at)

    # 2. latency at half the sustained rate
    rate = throughput / 2
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    rng = random.Random(5)

    async def observe() -> None:
        async for _, value in tail(settings, settings.topics.membership_changes,
                                   from_beginning=False):
            if value is None:
                continue
            change = orjson.loads(value)
            ref = change["cause"].get("ref")
            if ref in sent_at:
                latencies.append(time.time() - sent_at[ref])

    observer = asyncio.create_task(observe())
    await asyncio.sleep(2)  # the observer is subscribed at the end of the topic
    async with Publisher(settings) as pub:
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < latency_seconds:
            target = start + n / rate
            delay = target - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            event_id = f"lat-{n}"
            sent_at[event_id] = time.time()
            await pub.send(Interaction(
                event_id=event_id, contact_id=workload.contact_id(rng.randrange(10_000)),
                type=rng.choice(["page_visited", "email_opened", "purchase"]),
                occurred_at=datetime.now(UTC),
                properties={"amount": 120.0, "category": "shoes", "campaign": "spring"}))
            n += 1
        await pub.flush()
    await asyncio.sleep(3)
    observer.cancel()
    worker.stop()
    latencies.sort()
    result = {
        "segments_live": len(definitions),
        "partitions": partitions,
        "backlog_events": len(backlog),
        "throughput_events_per_s": round(throughput, 1),
        "latency_load_events_per_s": round(rate, 1),
        "latency_samples": len(latencies),
        "latency_ms_p50": round(1000 * statistics.median(latencies), 1) if latencies else None,
        "latency_ms_p99": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1)
        if latencies else None,
        "latency_ms_max": round(1000 * latencies[-1], 1) if latencies else None,
        "when": datetime.now(UTC).isoformat(),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segments", type=int, default=100)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    args = parser.parse_args()
    result = asyncio.run(run(args.segments, args.events, args.partitions, args.latency_seconds))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "e2e.json").write_text(json.dumps(result, indent=2) + "\n")
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
