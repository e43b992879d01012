"""Shared pieces of the end-to-end benchmarks: broker, settings, a worker
subprocess, segment definitions, per-partition markers, throughput and
latency measured from outside the worker process.

Every scenario gets its own topic prefix (fresh topics) and data dir.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agents.codec import input_payload  # noqa: E402
from agents.partitioning import one_key_per_partition  # noqa: E402
from app.client import Publisher, tail  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.worker_process import WorkerProcess  # noqa: E402
from models.inputs import ContactUpsert, Interaction  # noqa: E402
from models.segments import SegmentDefinition  # noqa: E402
from tools.wide_mix import wide_segment_mix  # noqa: E402
from tools.workload import WIDE, Workload  # noqa: E402

RESULTS = ROOT / "bench/results"
# Markers are placed behind the inputs on every partition of both the
# interactions and the contacts topic: ingest reads each upstream topic on
# its own, so a marker only says "done" for the topic it came through.
MARKER = SegmentDefinition(id="bench-marker", name="marker", status="live",
                           formula="performed survey_answered where marker exists ever"
                                   " or bench_marker exists")

_next_port = [6190]


def start_broker() -> str:
    """Start (or reuse) the local broker; returns the bootstrap address."""
    out = subprocess.run(["bash", str(ROOT / "deploy/kafka/kafka.sh"), "start"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def percentiles(values: Iterable[float], scale: float = 1000.0) -> dict:
    """p50/p99/max (default: seconds -> ms), rounded; None when empty."""
    v = sorted(values)
    if not v:
        return {"samples": 0, "p50": None, "p99": None, "max": None}
    return {
        "samples": len(v),
        "p50": round(scale * v[len(v) // 2], 1),
        "p99": round(scale * v[int(0.99 * (len(v) - 1))], 1),
        "max": round(scale * v[-1], 1),
    }


@dataclass
class Scenario:
    """One fresh prefix + data dir + the worker running on it."""

    bootstrap: str
    partitions: int = 4
    clock: str = "wall"
    name: str = "bench"
    #: ingest in a process of its own (SEGMENTFLOW_ROLE=ingest), the worker
    #: evaluator and API only (SEGMENTFLOW_ROLE=evaluator)
    ingest_process: bool = False
    prefix: str = field(init=False)
    data: Path = field(init=False)
    settings: Settings = field(init=False)
    worker: WorkerProcess | None = field(default=None, init=False)
    ingest: WorkerProcess | None = field(default=None, init=False)
    pids: list[int] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.prefix = f"bench-{self.name}-{uuid.uuid4().hex[:6]}"
        self.data = Path(tempfile.mkdtemp(prefix=f"segmentflow-{self.name}-"))
        _next_port[0] += 1
        self.settings = Settings(
            bootstrap_servers=self.bootstrap, topic_prefix=self.prefix,
            partitions=self.partitions, data_dir=self.data / "worker",
            web_port=_next_port[0], log_level="warning", clock=self.clock,
            role="evaluator" if self.ingest_process else "all")

    async def start_worker(self) -> float:
        """Start the worker (and the ingest process, if separate); returns
        monotonic time at which both were ready."""
        self.worker = WorkerProcess(self.settings, self.data / "worker.log")
        self.worker.start()
        assert self.worker.pid is not None
        self.pids.append(self.worker.pid)
        if self.ingest_process:
            self.ingest = WorkerProcess(self.settings.model_copy(update={
                "role": "ingest", "web_port": self.settings.web_port + 1000,
                "data_dir": self.data / "ingest"}), self.data / "ingest.log")
            self.ingest.start()
            assert self.ingest.pid is not None
            self.pids.append(self.ingest.pid)
            await self.ingest.wait_ready(timeout=180)
        await self.worker.wait_ready(timeout=180)
        return time.monotonic()

    def stop_worker(self) -> None:
        for process in (self.worker, self.ingest):
            if process is not None:
                process.stop()
        self.worker = self.ingest = None

    def cleanup(self) -> None:
        self.stop_worker()
        shutil.rmtree(self.data, ignore_errors=True)

    def data_dir_bytes(self) -> int:
        return sum(p.stat().st_size for p in Path(self.settings.data_dir).rglob("*")
                   if p.is_file())

    def worker_rss_bytes(self) -> int | None:
        if self.worker is None or self.worker.pid is None:
            return None
        for line in Path(f"/proc/{self.worker.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return None


async def wait_applied(worker: WorkerProcess, definitions: list[SegmentDefinition],
                       partitions: int, timeout: float = 600) -> None:
    """Wait until every partition runs every definition with its backfill done."""
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        for d in definitions:
            while True:
                async with session.get(f"{worker.url}/segments/{d.id}/status") as r:
                    parts = (await r.json()).get("partitions", {}) if r.status == 200 else {}
                if len(parts) == partitions and all(
                        p["version"] == d.version and p["backfill_complete"]
                        for p in parts.values()):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"segment {d.id} not applied in {timeout} s")
                await asyncio.sleep(0.05)


def marker_inputs(partitions: int, at: datetime, tag: str,
                  contacts_too: bool = False) -> list[Interaction | ContactUpsert]:
    """One marker interaction per partition (joins ``bench-marker``), and one
    marker contact upsert per partition if ``contacts_too``."""
    markers: list[Interaction | ContactUpsert] = []
    for via in ("i", "c") if contacts_too else ("i",):
        for n, cid in one_key_per_partition(f"marker-{tag}-{via}", partitions):
            markers.append(
                Interaction(event_id=f"{tag}-{n}", contact_id=cid, type="survey_answered",
                            occurred_at=at, properties={"marker": tag}) if via == "i"
                else ContactUpsert(contact_id=cid, attributes={"bench_marker": tag},
                                   updated_at=at))
    return markers


async def wait_markers(settings: Settings, tag: str, count: int, timeout: float = 600) -> float:
    """Monotonic time at which every partition's marker change has been read."""
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
            raise TimeoutError(f"markers {tag} not seen in {timeout} s")
    raise AssertionError("unreachable")


def make_workload(contacts: int, events: int, seed: int = 3) -> tuple[list, list[Interaction]]:
    """(setup inputs: accounts + contacts + profile changes, interaction backlog)."""
    workload = Workload(contacts=contacts, accounts=100, events=events, seed=seed,
                        start=datetime.now(UTC) - timedelta(days=20), pools=WIDE)
    all_inputs = list(workload.inputs())
    setup = [i for i in all_inputs if not isinstance(i, Interaction)]
    backlog = [i for i in all_inputs if isinstance(i, Interaction)]
    return setup, backlog


def interaction_bytes(models: Iterable[Interaction]) -> list[int]:
    return [len(orjson.dumps(input_payload(m))) for m in models]


async def prepare(sc: Scenario, definitions: list[SegmentDefinition], setup: list,
                  apply_timeout: float = 600, load_timeout: float = 600) -> dict:
    """Start a worker, define segments (+ marker), load the setup inputs,
    wait until they are evaluated, stop the worker. Returns timings."""
    definitions = [*definitions, MARKER]
    t0 = time.monotonic()
    await sc.start_worker()
    rss_empty = sc.worker_rss_bytes()
    async with Publisher(sc.settings) as pub:
        for d in definitions:
            await pub.send(d)
        await pub.flush()
        assert sc.worker is not None
        await wait_applied(sc.worker, definitions, sc.partitions, timeout=apply_timeout)
        t_applied = time.monotonic()
        await pub.send_all(setup + marker_inputs(sc.partitions, datetime.now(UTC), "setup",
                                                 contacts_too=True))
    await wait_markers(sc.settings, "setup", 2 * sc.partitions, timeout=load_timeout)
    t_loaded = time.monotonic()
    rss_loaded = sc.worker_rss_bytes()
    sc.stop_worker()
    return {"define_seconds": round(t_applied - t0, 2),
            "setup_inputs": len(setup),
            "setup_seconds": round(t_loaded - t_applied, 2),
            "rss_empty_bytes": rss_empty, "rss_after_setup_bytes": rss_loaded}


async def topic_records(settings: Settings, topic: str) -> int:
    """Records in ``topic`` (sum of end offsets; nothing is deleted in a run)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.bootstrap_servers,
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        return sum((await consumer.end_offsets(tps)).values()) if tps else 0
    finally:
        await consumer.stop()


async def measure_throughput(sc: Scenario, backlog: list[Interaction]) -> dict:
    """Produce the backlog (+ markers) while the worker is down, start it,
    time from ready to every partition's marker. Leaves the worker running.
    Also counts the membership changes the backlog produced."""
    changes_topic = sc.settings.topics.membership_changes
    changes_before = await topic_records(sc.settings, changes_topic)
    async with Publisher(sc.settings) as pub:
        await pub.send_all(backlog + marker_inputs(sc.partitions, datetime.now(UTC), "bulk"))
    ready_at = await sc.start_worker()
    cpu_before = cpu_now(sc)
    done_at = await wait_markers(sc.settings, "bulk", sc.partitions)
    n = len(backlog) + sc.partitions
    cpu = cpu_us_per_event(cpu_before, cpu_now(sc), n)
    changes = await topic_records(sc.settings, changes_topic) - changes_before
    result = {"backlog_events": n, "seconds": round(done_at - ready_at, 2),
              "events_per_s": round(n / (done_at - ready_at), 1),
              "membership_changes": changes,
              "changes_per_event": round(changes / n, 2)}
    return result | cpu


async def measure_burst(sc: Scenario, backlog: list[Interaction]) -> dict:
    """The worker (and ingest process) running and idle, the backlog (+
    markers) is published: events/s from the first record sent until every
    partition's marker was evaluated. Unlike ``measure_throughput``, ingest
    gets no head start while the evaluator boots, so the two roles layouts
    compare fairly; the publisher runs on the same cores meanwhile."""
    assert sc.worker is not None
    cpu_before = cpu_now(sc)
    started = time.monotonic()
    async with Publisher(sc.settings) as pub:
        await pub.send_all(backlog + marker_inputs(sc.partitions, datetime.now(UTC), "burst"))
    published = time.monotonic() - started
    done_at = await wait_markers(sc.settings, "burst", sc.partitions)
    n = len(backlog) + sc.partitions
    return {"backlog_events": n, "seconds": round(done_at - started, 2),
            "publish_seconds": round(published, 2),
            "events_per_s": round(n / (done_at - started), 1)} | cpu_us_per_event(
                cpu_before, cpu_now(sc), n)


async def roles_run(bootstrap: str, segments: int, contacts: int, events: int,
                    partitions: int = 4) -> dict:
    """``measure_burst`` with ingest in the worker, then in its own process."""
    out: dict = {"segments_live": segments + 1, "contacts": contacts, "partitions": partitions}
    setup, backlog = make_workload(contacts, events)
    for layout, separate in (("one_process", False), ("ingest_process", True)):
        sc = Scenario(bootstrap, partitions=partitions, name=f"roles{segments}",
                      ingest_process=separate)
        try:
            await prepare(sc, [m.definition for m in wide_segment_mix(segments)], setup)
            await sc.start_worker()
            await wait_idle(sc)
            out[layout] = await measure_burst(sc, backlog)
        finally:
            sc.cleanup()
    return out


def cpu_now(sc: Scenario) -> dict[str, float | None]:
    """CPU seconds so far of the worker, the ingest process and the broker."""
    pids = {"worker": sc.worker.pid if sc.worker else None,
            "ingest": sc.ingest.pid if sc.ingest else None, "broker": broker_pid()}
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def cpu_us_per_event(before: dict[str, float | None], after: dict[str, float | None],
                     events: int) -> dict[str, float]:
    """``<process>_cpu_us_per_event`` for each process measured both times.
    CPU per event wanders far less than events/s on a shared host: the
    figure to compare two versions of the worker by."""
    return {f"{name}_cpu_us_per_event": round((after[name] - start) * 1e6 / events, 1)
            for name, start in before.items()
            if start is not None and after.get(name) is not None}


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a live process (Linux /proc), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def broker_pid() -> int | None:
    """The broker deploy/kafka/kafka.sh started, if it runs here."""
    try:
        return int((ROOT / "deploy/kafka/run/kafka.pid").read_text().strip())
    except (OSError, ValueError):
        return None


async def wait_idle(sc: Scenario, quick: float = 0.5, timeout: float = 180) -> float:
    """Send one marker per partition until they come back within ``quick``
    seconds (the worker has caught up); returns the seconds waited."""
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < timeout:
        tag = f"idle{n}-{uuid.uuid4().hex[:4]}"
        sent = time.monotonic()
        async with Publisher(sc.settings) as pub:
            await pub.send_all(marker_inputs(sc.partitions, datetime.now(UTC), tag))
        if await wait_markers(sc.settings, tag, sc.partitions) - sent < quick:
            break
        n += 1
    return round(time.monotonic() - t0, 1)


async def measure_latency(sc: Scenario, rate: float, seconds: float, contacts: int,
                          seed: int = 5, linger_ms: int = 0) -> dict:
    """Interactions at ``rate``/s for ``seconds``, each with its produce time;
    latency = change read by an outside consumer - produce time."""
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    rng = random.Random(seed)
    workload = Workload(contacts=contacts)

    async def observe() -> None:
        async for _, value in tail(sc.settings, sc.settings.topics.membership_changes,
                                   from_beginning=False):
            if value is None:
                continue
            change = orjson.loads(value)
            ref = change["cause"].get("ref")
            if ref in sent_at:
                latencies.append(time.time() - sent_at[ref])

    observer = asyncio.create_task(observe())
    await asyncio.sleep(2)  # the observer is subscribed at the end of the topic
    n = 0
    async with Publisher(sc.settings, linger_ms=linger_ms) as pub:
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            event_id = f"lat-{n}"
            sent_at[event_id] = time.time()
            await pub.send(Interaction(
                event_id=event_id, contact_id=workload.contact_id(rng.randrange(contacts)),
                type=rng.choice(["page_visited", "email_opened", "email_clicked", "purchase"]),
                occurred_at=datetime.now(UTC),
                properties={"amount": round(rng.uniform(5, 400), 2),
                            "category": rng.choice(WIDE.categories),
                            "campaign": rng.choice(WIDE.campaigns)}))
            n += 1
        await pub.flush()
    await asyncio.sleep(3)
    observer.cancel()
    return {"load_events_per_s": round(rate, 1), "events_sent": n,
            "latency_ms": percentiles(latencies)}


async def service_run(bootstrap: str, segments: int, contacts: int, events: int,
                      partitions: int = 4, latency_seconds: float = 0.0,
                      keep: bool = False, on_running=None) -> dict:
    """Prepare a fresh scenario with ``segments`` live segments, measure
    throughput on a backlog (and latency at half of it if asked).
    ``on_running(sc)`` is awaited while the worker runs the backlog
    (profiling). Returns the figures (+ the scenario under "_scenario" if keep)."""
    sc = Scenario(bootstrap, partitions=partitions, name=f"s{segments}")
    try:
        setup, backlog = make_workload(contacts, events)
        prep = await prepare(sc, [m.definition for m in wide_segment_mix(segments)], setup)
        if on_running is not None:
            task = asyncio.create_task(measure_throughput(sc, backlog))
            while sc.worker is None and not task.done():
                await asyncio.sleep(0.05)
            await on_running(sc)
            thr = await task
        else:
            thr = await measure_throughput(sc, backlog)
        result = {"segments_live": segments + 1, "contacts": contacts,
                  "partitions": partitions, "prepare": prep, "throughput": thr,
                  "interaction_bytes_mean": round(
                      sum(interaction_bytes(backlog[:2000])) / min(2000, len(backlog)), 1),
                  "topic_prefix": sc.prefix}
        result["rss_after_backlog_bytes"] = sc.worker_rss_bytes()
        result["data_dir_bytes"] = sc.data_dir_bytes()
        if latency_seconds > 0:
            # After the backlog the worker still wakes the contacts whose
            # windows expired meanwhile: measure steady state, not that.
            result["idle_wait_seconds"] = await wait_idle(sc)
            result["latency"] = await measure_latency(
                sc, thr["events_per_s"] / 2, latency_seconds, contacts)
        if keep:
            result["_scenario"] = sc
        return result
    finally:
        if not keep:
            sc.cleanup()


async def wait_group_settled(workers: list[WorkerProcess], settle: float = 3.0,
                             timeout: float = 180) -> None:
    """Every worker ready and no rebalance under way, twice ``settle`` apart
    (a late joiner triggers one more rebalance)."""
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        stable = 0
        while stable < 2:
            states = []
            for worker in workers:
                async with session.get(worker.url + "/ready") as r:
                    states.append((await r.json()).get("ready", False))
            stable = stable + 1 if all(states) else 0
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers not settled in {timeout} s: {states}")
            await asyncio.sleep(settle if stable else 0.2)


async def measure_live_throughput(sc: Scenario, backlog: list[Interaction], tag: str) -> dict:
    """With the worker(s) already running: time from the first record produced
    until every partition's marker (behind ``backlog``) has been evaluated."""
    t0 = time.monotonic()
    async with Publisher(sc.settings) as pub:
        await pub.send_all(backlog + marker_inputs(sc.partitions, datetime.now(UTC), tag))
    produced = time.monotonic() - t0
    done_at = await wait_markers(sc.settings, tag, sc.partitions)
    n = len(backlog) + sc.partitions
    return {"events": n, "seconds": round(done_at - t0, 2),
            "produce_seconds": round(produced, 2),
            "events_per_s": round(n / (done_at - t0), 1)}


async def scale_out_run(bootstrap: str, segments: int, contacts: int, events: int,
                        partitions: int = 4) -> dict:
    """One worker, then two, on the same topics and contacts: the first half
    of the interactions with one worker running, the second half after a
    second worker joined (and recovered its partitions from the changelogs).
    Both halves are produced while the workers run (a live stream)."""
    sc = Scenario(bootstrap, partitions=partitions, name=f"x{segments}")
    second: WorkerProcess | None = None
    try:
        setup, backlog = make_workload(contacts, events)
        prep = await prepare(sc, [m.definition for m in wide_segment_mix(segments)], setup)
        half = len(backlog) // 2
        await sc.start_worker()
        assert sc.worker is not None
        await wait_group_settled([sc.worker])
        one = await measure_live_throughput(sc, backlog[:half], "one")
        _next_port[0] += 1
        settings = sc.settings.model_copy(update={
            "web_port": _next_port[0], "data_dir": sc.data / "worker-2"})
        second = WorkerProcess(settings, sc.data / "worker-2.log")
        second.start()
        await second.wait_ready(timeout=180)
        await wait_group_settled([sc.worker, second])
        two = await measure_live_throughput(sc, backlog[half:], "two")
        return {"segments_live": segments + 1, "contacts": contacts, "partitions": partitions,
                "prepare": prep, "one_worker": one, "two_workers": two,
                "two_vs_one": round(two["events_per_s"] / one["events_per_s"], 2)}
    finally:
        if second is not None:
            second.stop()
        sc.cleanup()
