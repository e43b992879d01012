"""Scale-out on Kafka, measured (issue #16 item 5): several workers on one
topic prefix and consumer group, 16 partitions, on this 2-core host.

    .venv/bin/python bench/scale_out.py --quick          # a few minutes
    .venv/bin/python bench/scale_out.py                  # full, ~15 minutes
    .venv/bin/python bench/scale_out.py --throughput     # one part only
    .venv/bin/python bench/scale_out.py --failover --recovery

Three parts (all by default; each flag selects one):

``--throughput``: the same workload (contacts, N live segments, an
  interaction backlog) on a fresh prefix per worker count, drained by 1, 2
  and 4 workers (``app.worker_process.WorkerProcess``: own web port and data
  dir, same prefix and group). The workers run and the group is settled
  before the backlog is produced; events/s = backlog / (first record
  produced -> every partition's marker change read by an outside consumer).
  CPU seconds of each worker, of the broker and of the whole machine over
  the drain (``/proc``): on 2 cores the sum of every process is capped at 2.

``--failover``: two workers, a stream of interactions (and probe inputs:
  a new contact's ``survey_answered`` that joins the marker segment, one
  join expected each). The victim starts first on the state loaded by a
  preparing worker, the survivor joins with an empty data dir (so it holds
  no copy of the victim's partitions unless standby replicas gave it one).
  kill -9 the victim, then at once one marker per partition: seconds from
  the kill until the marker of every partition the victim held produced
  its change (= served again: taken over, restored, caught up with what
  queued meanwhile). Also when the survivor's ``/status?local=1`` holds
  every partition (assigned and restored), and, from the survivor's log,
  when its consumer saw the rebalance (kill detection: the group's session
  timeout). Nothing lost: every probe's join is on the change topic. Run
  with ``standby_replicas`` 0 and 1 (``SEGMENTFLOW_STANDBY_REPLICAS``);
  ``--session-timeout-ms`` sets ``SEGMENTFLOW_SESSION_TIMEOUT_MS``.

``--recovery``: a changelog partition holding the state of N contacts (1M
  in the full run): the records the processor writes
  (``runtime.processor.PartitionProcessor`` over contact upserts + their
  interactions, with live segments), produced to a fresh compacted topic
  ``<prefix>.evaluator-state``; then a fresh store is restored through the
  worker's own path (``BatchEvaluator._restore`` with the worker's
  ``loop_settings``: the same reader and ``apply_changelog``), and the
  tail-only restore of a store whose checkpoint is intact (rewound by T
  records). Seconds per 1M contacts, records/s, MB of changelog.

Writes bench/results/scale_out.json (git-ignored: ``git add -f``) and its
section of bench/results/SUMMARY.md (bench/run.py keeps it). The machine is
small and shared: the absolute figures wander, quote ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agents.codec import input_payload  # noqa: E402
from agents.partitioning import one_key_per_partition, partition_for  # noqa: E402
from app.client import Publisher, tail  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.worker_process import WorkerProcess  # noqa: E402
from bench import harness  # noqa: E402
from bench.harness import (  # noqa: E402
    MARKER,
    RESULTS,
    Scenario,
    make_workload,
    marker_inputs,
    measure_live_throughput,
    prepare,
    start_broker,
    wait_group_settled,
)
from models.inputs import Interaction  # noqa: E402
from tools.wide_mix import wide_segment_mix  # noqa: E402
from tools.workload import EVENT_MIX, WIDE, Workload  # noqa: E402

CONFIG: dict[str, dict[str, Any]] = {
    "quick": {"throughput": {"workers": [1, 2, 4], "segments": 100, "contacts": 4_000,
                             "events": 24_000},
              "failover": {"contacts": 20_000, "events": 20_000, "segments": 20,
                           "rate": 200.0, "warmup": 4.0, "after": 4.0},
              "recovery": {"contacts": 100_000, "interactions": 2, "segments": 20,
                           "tail": 10_000}},
    "full": {"throughput": {"workers": [1, 2, 4], "segments": 100, "contacts": 10_000,
                            "events": 40_000},
             "failover": {"contacts": 200_000, "events": 100_000, "segments": 20,
                          "rate": 300.0, "warmup": 6.0, "after": 6.0},
             "recovery": {"contacts": 1_000_000, "interactions": 2, "segments": 20,
                          "tail": 10_000}},
}
PARTITIONS = 16
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


# -- workers -----------------------------------------------------------------------------


class Worker(WorkerProcess):
    """A worker with extra environment (settings WorkerProcess does not pass
    on yet: standby replicas, the evaluator group's session timeout)."""

    def __init__(self, settings: Settings, log_path: Path, extra_env: dict[str, str]) -> None:
        super().__init__(settings, log_path)
        self.extra_env = extra_env

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env.update(self.extra_env)
        return env


def worker_env(standby_replicas: int | None = None,
               session_timeout_ms: int | None = None) -> dict[str, str]:
    env: dict[str, str] = {}
    if standby_replicas is not None:
        env["SEGMENTFLOW_STANDBY_REPLICAS"] = str(standby_replicas)
    if session_timeout_ms is not None:
        env["SEGMENTFLOW_SESSION_TIMEOUT_MS"] = str(session_timeout_ms)
    return env


def new_worker(sc: Scenario, name: str, data_dir: Path | None = None,
               env: dict[str, str] | None = None, log_level: str | None = None) -> Worker:
    """A worker on ``sc``'s prefix with its own web port and data dir."""
    harness._next_port[0] += 1
    update: dict[str, Any] = {"web_port": harness._next_port[0],
                              "data_dir": data_dir or sc.data / name}
    if log_level:
        update["log_level"] = log_level
    return Worker(sc.settings.model_copy(update=update), sc.data / f"{name}.log", env or {})


async def start_all(workers: list[Worker]) -> None:
    for w in workers:
        w.start()
    for w in workers:
        await w.wait_ready(timeout=300)
    await wait_group_settled(list(workers), timeout=300)


async def local_status(worker: WorkerProcess, session: aiohttp.ClientSession) -> dict | None:
    try:
        async with session.get(worker.url + "/status?local=1", timeout=5) as r:
            return await r.json() if r.status == 200 else None
    except (TimeoutError, aiohttp.ClientError):
        return None


async def held_partitions(worker: WorkerProcess) -> set[int]:
    async with aiohttp.ClientSession() as session:
        status = await local_status(worker, session)
    return {int(p) for p in (status or {}).get("partitions", {})}


def local_copies(worker: WorkerProcess) -> set[int]:
    """Partitions with a RocksDB dir in the worker's data dir (active, standby
    or left over from an earlier assignment)."""
    base = Path(worker.settings.data_dir) / "evaluator"
    return {int(p.name[1:]) for p in base.glob("p*") if p.name[1:].isdigit()}


def cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process (and its reaped children), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return sum(int(v) for v in fields[11:15]) / CLK_TCK


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLK_TCK, sum(values) / CLK_TCK


def broker_pid() -> int | None:
    try:
        return int((ROOT / "deploy/kafka/run/kafka.pid").read_text().strip())
    except (OSError, ValueError):
        return None


# -- (a) throughput with 1, 2, 4 workers ------------------------------------------------


async def throughput(bootstrap: str, cfg: dict) -> dict:
    setup, backlog = make_workload(cfg["contacts"], cfg["events"])
    definitions = [m.definition for m in wide_segment_mix(cfg["segments"])]
    runs = []
    for n in cfg["workers"]:
        log(f"throughput: {n} worker(s), {PARTITIONS} partitions, {cfg['segments']} segments")
        sc = Scenario(bootstrap, partitions=PARTITIONS, name=f"so{n}")
        workers: list[Worker] = []
        try:
            prep = await prepare(sc, definitions, setup)
            # the first reuses the preparing worker's store; the others
            # restore their partitions from the changelog while joining
            workers = [new_worker(sc, f"w{i}", sc.data / "worker" if i == 0 else None)
                       for i in range(n)]
            await start_all(workers)
            held = [sorted(await held_partitions(w)) for w in workers]
            pids = [w.pid for w in workers]
            cpu0 = [cpu_seconds(p) for p in pids]
            bpid = broker_pid()
            b0, m0, me0 = cpu_seconds(bpid), machine_cpu(), cpu_seconds(os.getpid())
            thr = await measure_live_throughput(sc, backlog, f"thr{n}")
            cpu1 = [cpu_seconds(p) for p in pids]
            b1, m1, me1 = cpu_seconds(bpid), machine_cpu(), cpu_seconds(os.getpid())
            wall = thr["seconds"]
            per_worker = [round(b - a, 2) if a is not None and b is not None else None
                          for a, b in zip(cpu0, cpu1, strict=True)]
            run = {"workers": n, "partitions_held": held, **thr,
                   "prepare_setup_seconds": prep["setup_seconds"],
                   "cpu_seconds_per_worker": per_worker,
                   "worker_cores": round(sum(c or 0 for c in per_worker) / wall, 2),
                   "broker_cores": (round((b1 - b0) / wall, 2)
                                    if b0 is not None and b1 is not None else None),
                   "bench_process_cores": (round((me1 - me0) / wall, 2)
                                           if me0 is not None and me1 is not None else None),
                   "machine_cores_busy": round((m1[0] - m0[0]) / wall, 2),
                   "machine_cores": os.cpu_count()}
            # whatever else ran meanwhile (the machine is shared)
            run["other_cores"] = round(run["machine_cores_busy"] - run["worker_cores"]
                                       - (run["broker_cores"] or 0)
                                       - (run["bench_process_cores"] or 0), 2)
            runs.append(run)
            log(f"  {thr['events_per_s']} events/s; CPU: workers {run['worker_cores']} "
                f"cores, broker {run['broker_cores']}, whole machine "
                f"{run['machine_cores_busy']} of {os.cpu_count()}")
        finally:
            for w in workers:
                w.stop()
            sc.cleanup()
    one = runs[0]["events_per_s"] if runs else None
    for run in runs:
        run["vs_one_worker"] = round(run["events_per_s"] / one, 2) if one else None
    return {"partitions": PARTITIONS, "segments_live": cfg["segments"] + 1,
            "contacts": cfg["contacts"], "backlog_events": len(backlog), "runs": runs}


# -- (b) failover, standby replicas off and on ------------------------------------------

_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def log_events(path: Path, patterns: dict[str, tuple[str, ...]],
               after: float) -> dict[str, float]:
    """Wall time (epoch s) of the first log entry after ``after`` holding every
    string of each pattern (an entry: a timestamped line and the lines below
    it, e.g. aiokafka's partition tables)."""
    entries: list[tuple[float, str]] = []
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    for line in lines:
        m = _LOG_TIME.match(line)
        if m:
            at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").replace(
                tzinfo=UTC).timestamp()  # the worker logs UTC wall time here (TZ unset)
            entries.append((at, line))
        elif entries:
            entries[-1] = (entries[-1][0], entries[-1][1] + "\n" + line)
    found: dict[str, float] = {}
    for at, text in entries:
        if at < after:
            continue
        for name, pattern in patterns.items():
            if name not in found and all(part in text for part in pattern):
                found[name] = at
    return found


class ChangeWatch:
    """First time (monotonic) each marker-segment join was read, by contact."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.seen: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async for _, value in tail(self.settings, self.settings.topics.membership_changes,
                                   from_beginning=False):
            if value is None:
                continue
            change = orjson.loads(value)
            if change["segment_id"] == MARKER.id and change["change"] == "joined":
                cid = change["contact_id"]
                self.seen.setdefault(cid, time.monotonic())
                self.count[cid] = self.count.get(cid, 0) + 1

    async def start(self) -> None:
        """Tail from the topic's end (the loaded state's joins are not read)."""
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(2)  # subscribed and positioned before anything is sent

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def wait(self, ids: set[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not ids <= self.seen.keys():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True


async def stream(sc: Scenario, rate: float, contacts: int, run: str, probes: list[str],
                 stop: asyncio.Event, probe_every: int = 10) -> int:
    """Interactions at ``rate``/s until ``stop``; every ``probe_every``-th is a
    probe (a new contact's survey answer: one join of the marker segment)."""
    rng = random.Random(run)
    workload = Workload(contacts=contacts)
    types = [t for t, w in EVENT_MIX for _ in range(w)]
    n = 0
    async with Publisher(sc.settings) as pub:
        start = time.monotonic()
        while not stop.is_set():
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = datetime.now(UTC)
            if n % probe_every == 0:
                cid = f"probe-{run}-{n}"
                probes.append(cid)
                await pub.send(Interaction(event_id=f"{run}-{n}", contact_id=cid,
                                           type="survey_answered", occurred_at=now,
                                           properties={"marker": run}))
            else:
                kind = rng.choice(types)
                props: dict[str, object] = {"campaign": rng.choice(WIDE.campaigns)}
                if kind in ("purchase", "return"):
                    props = {"amount": round(rng.uniform(5, 400), 2),
                             "category": rng.choice(WIDE.categories)}
                await pub.send(Interaction(
                    event_id=f"{run}-{n}", contact_id=workload.contact_id(rng.randrange(contacts)),
                    type=kind, occurred_at=now, properties=props))  # type: ignore[arg-type]
            n += 1
        await pub.flush()
    return n


async def watch_survivor(worker: WorkerProcess, t_kill: float, out: dict,
                         stop: asyncio.Event) -> None:
    """Poll the survivor's local /status: first moments it did not answer
    (rebalancing) and it held every partition."""
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            status = await local_status(worker, session)
            now = time.monotonic() - t_kill
            held = len((status or {}).get("partitions", {}))
            if status is None or held == 0:
                out.setdefault("first_unanswered_s", round(now, 2))
            if held == PARTITIONS:
                out.setdefault("holds_all_s", round(now, 2))
                if status is not None and all(
                        (p.get("input_lag") or 0) == 0 for p in status["partitions"].values()):
                    out.setdefault("holds_all_no_input_lag_s", round(now, 2))
            if "standby" in str(status or {}):
                out["survivor_status_mentions_standby"] = True
            await asyncio.sleep(0.2)


async def wait_standby_copies(survivor: WorkerProcess, victim_parts: set[int],
                              timeout: float) -> float:
    """Until the survivor has a local store of every partition of the victim
    (its standby copies); returns seconds waited (timeout if never)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if victim_parts <= local_copies(survivor):
            break
        await asyncio.sleep(0.5)
    return round(time.monotonic() - t0, 1)


async def changelog_records(settings: Settings, partitions: set[int]) -> int:
    """Records in these partitions of the evaluator's changelog (end offsets;
    compaction may have removed some: an upper bound of a full restore)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topics.evaluator_state, p) for p in partitions]
        return sum((await consumer.end_offsets(tps)).values()) if tps else 0
    finally:
        await consumer.stop()


async def failover_once(sc: Scenario, warm_dir: Path, standby: int, cfg: dict,
                        session_timeout_ms: int | None) -> tuple[dict, Path]:
    env = worker_env(standby, session_timeout_ms)
    tag = f"fo{standby}-{uuid.uuid4().hex[:4]}"
    victim = new_worker(sc, f"victim-{tag}", warm_dir, env, log_level="info")
    survivor = new_worker(sc, f"survivor-{tag}", None, env, log_level="info")
    watch = ChangeWatch(sc.settings)
    result: dict[str, Any] = {"standby_replicas": standby,
                              "session_timeout_ms": session_timeout_ms or "default"}
    try:
        t0 = time.monotonic()
        await start_all([victim])
        result["victim_ready_s"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        await start_all([survivor])
        await wait_group_settled([victim, survivor], timeout=300)
        result["survivor_joined_settled_s"] = round(time.monotonic() - t0, 1)
        victim_parts = await held_partitions(victim)
        survivor_parts = await held_partitions(survivor)
        if standby:
            # standby copies fill in the background; give them time to catch up
            result["standby_copies_opened_s"] = await wait_standby_copies(
                survivor, victim_parts, timeout=120)
            await asyncio.sleep(cfg["warmup"])
        result["victim_partitions"] = sorted(victim_parts)
        result["survivor_partitions"] = sorted(survivor_parts)
        result["survivor_local_copies_of_victims_before_kill"] = sorted(
            local_copies(survivor) & victim_parts)
        result["changelog_records_of_victims_partitions"] = await changelog_records(
            sc.settings, victim_parts)
        await watch.start()
        probes: list[str] = []
        stop_stream = asyncio.Event()
        streamer = asyncio.create_task(stream(sc, cfg["rate"], cfg["contacts"], tag, probes,
                                              stop_stream))
        await asyncio.sleep(cfg["warmup"])
        kill_wall = time.time()
        t_kill = time.monotonic()
        victim.kill()
        result["killed_at"] = datetime.fromtimestamp(kill_wall, UTC).isoformat()
        # one marker per partition, right after the kill
        markers = {partition_for(cid, PARTITIONS): cid
                   for _, cid in one_key_per_partition(f"marker-{tag}-i", PARTITIONS)}
        async with Publisher(sc.settings) as pub:
            await pub.send_all(marker_inputs(PARTITIONS, datetime.now(UTC), tag))
        seen_status: dict[str, Any] = {}
        stop_watch = asyncio.Event()
        watcher = asyncio.create_task(watch_survivor(survivor, t_kill, seen_status, stop_watch))
        served = await watch.wait(set(markers.values()), timeout=300)
        per_partition = {p: round(watch.seen[cid] - t_kill, 2)
                         for p, cid in markers.items() if cid in watch.seen}
        vict = [per_partition[p] for p in victim_parts if p in per_partition]
        own = [per_partition[p] for p in survivor_parts if p in per_partition]
        result.update({
            "all_markers_served": served,
            "served_again_s": max(vict) if vict and len(vict) == len(victim_parts) else None,
            "victim_partitions_served_s_min_median": (
                [min(vict), sorted(vict)[len(vict) // 2]] if vict else None),
            "survivor_own_partitions_served_max_s": max(own) if own else None,
            "marker_seconds_by_partition": per_partition})
        await asyncio.sleep(cfg["after"])
        stop_stream.set()
        sent = await streamer
        stop_watch.set()
        await watcher
        result.update(seen_status)
        # nothing lost: every probe (sent before, during and after the kill) joined
        end_tag = f"{tag}-end"
        async with Publisher(sc.settings) as pub:
            await pub.send_all(marker_inputs(PARTITIONS, datetime.now(UTC), end_tag))
        end_ids = {cid for _, cid in one_key_per_partition(f"marker-{end_tag}-i", PARTITIONS)}
        await watch.wait(end_ids, timeout=300)
        await watch.wait(set(probes), timeout=30)
        missing = [p for p in probes if p not in watch.seen]
        result.update({
            "stream_inputs_sent": sent, "probes_sent": len(probes),
            "probes_missing": len(missing), "missing_examples": missing[:5],
            "probes_joined_more_than_once": sum(1 for p in probes if watch.count.get(p, 0) > 1),
        })
        # the survivor's own account of the rebalance (aiokafka and our logs)
        group = f"{sc.prefix}-evaluator"  # app.batch_evaluator.evaluator_group
        events = log_events(survivor.log_path, {
            "heartbeat_saw_rebalance": (f"group {group} because it is rebalancing",),
            "revoked": ("Revoking previously assigned partitions", f"group {group}"),
            "assigned": ("Setting newly assigned partitions", f"group {group}"),
        }, kill_wall)
        result["survivor_log_s_after_kill"] = {k: round(v - kill_wall, 2)
                                               for k, v in sorted(events.items())}
        kept = RESULTS / f"scale_out-survivor-standby{standby}.log"  # git-ignored
        shutil.copyfile(survivor.log_path, kept)
        result["survivor_log"] = str(kept.relative_to(ROOT))
        assigned = result["survivor_log_s_after_kill"].get("assigned")
        if assigned is not None and "holds_all_s" in seen_status:
            # assignment received -> restored and published (polled every 0.2 s)
            result["restore_after_assignment_s"] = round(seen_status["holds_all_s"] - assigned, 2)
        return result, Path(survivor.settings.data_dir)
    finally:
        await watch.stop()
        victim.kill()
        survivor.stop()


async def failover(bootstrap: str, cfg: dict, standby_modes: list[int],
                   session_timeout_ms: int | None) -> dict:
    sc = Scenario(bootstrap, partitions=PARTITIONS, name="fo")
    try:
        setup, history = make_workload(cfg["contacts"], cfg["events"])
        definitions = [m.definition for m in wide_segment_mix(cfg["segments"])]
        log(f"failover: loading {cfg['contacts']:,} contacts + {len(history):,} interactions, "
            f"{cfg['segments']} segments, {PARTITIONS} partitions")
        prep = await prepare(sc, definitions, setup + history, load_timeout=1800)
        log(f"  loaded in {prep['setup_seconds']} s")
        out: dict[str, Any] = {"contacts": cfg["contacts"], "history_interactions": len(history),
                               "segments_live": cfg["segments"] + 1, "partitions": PARTITIONS,
                               "stream_rate": cfg["rate"], "prepare": prep,
                               "state_bytes_on_disk": sc.data_dir_bytes(), "runs": []}
        warm = sc.data / "worker"
        for standby in standby_modes:
            log(f"failover: standby_replicas={standby}")
            run, warm = await failover_once(sc, warm, standby, cfg, session_timeout_ms)
            out["runs"].append(run)
            log(f"  served again {run.get('served_again_s')} s after the kill (survivor held "
                f"all at {run.get('holds_all_s')} s, log {run['survivor_log_s_after_kill']}); "
                f"probes missing {run['probes_missing']} of {run['probes_sent']}")
        return out
    finally:
        sc.cleanup()


# -- (c) restore per 1M contacts --------------------------------------------------------


def recovery_inputs(contacts: int, interactions: int, segments: int,
                    seed: int = 5) -> Iterator[tuple[str, dict[str, Any]]]:
    """Segments, accounts, then each contact's upsert followed by its
    interactions (so a contact's records mostly land in one batch)."""
    for m in wide_segment_mix(segments):
        yield "segment", input_payload(m.definition)
    rng = random.Random(seed)
    types = [t for t, w in EVENT_MIX for _ in range(w)]
    now = datetime.now(UTC)
    n = 0
    for item in Workload(contacts=contacts, accounts=100, events=0, seed=seed,
                         start=now - timedelta(days=20), pools=WIDE).inputs():
        kind = "account" if type(item).__name__ == "AccountUpsert" else "contact"
        yield kind, input_payload(item)
        if kind != "contact":
            continue
        cid = item.contact_id  # type: ignore[union-attr]
        for _ in range(interactions):
            n += 1
            t = rng.choice(types)
            props: dict[str, object] = {"campaign": rng.choice(WIDE.campaigns)}
            if t in ("purchase", "return"):
                props = {"amount": round(rng.uniform(5, 400), 2),
                         "category": rng.choice(WIDE.categories)}
            yield "interaction", input_payload(Interaction(
                event_id=f"r{n}", contact_id=cid, type=t,  # type: ignore[arg-type]
                occurred_at=now - timedelta(seconds=rng.uniform(0, 20 * 86400)),
                properties=props))


async def fill_changelog(bootstrap: str, topic: str, cfg: dict,
                         sample: list[tuple[int, bytes, bytes | None]],
                         sample_max: int = 1_000_000) -> dict:
    """Drive one PartitionProcessor over the inputs; produce every changelog
    record it writes to ``topic`` partition 0, as the worker would. The first
    ``sample_max`` records are also kept in ``sample`` (offset, key, value)."""
    from aiokafka import AIOKafkaProducer

    from engine import Limits
    from runtime.catalogs import CatalogCache
    from runtime.processor import PartitionProcessor, ProcessorConfig
    from runtime.staged import StagedStore
    from runtime.store import Store

    config = ProcessorConfig(partitions=1)
    # RocksDB, not MemoryStore: its sorted key list inserts in O(n), far too
    # slow at a million contacts
    scratch = Path(tempfile.mkdtemp(prefix="segmentflow-recovery-fill-"))
    rocks = Store(scratch, cache_bytes=64 << 20, write_buffer_bytes=16 << 20)
    processor = PartitionProcessor(StagedStore(rocks.assign(0)), config,
                                   CatalogCache(Limits(history_retention_us=config.retention_us)))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                enable_idempotence=True, max_batch_size=1_048_576,
                                max_request_size=1_048_576)
    await producer.start()
    records = key_bytes = value_bytes = inputs = 0
    keys: set[bytes] = set()
    t0 = time.monotonic()
    processing = 0.0
    pending: list[asyncio.Future[Any]] = []
    try:
        chunk: list[tuple[str, dict[str, Any]]] = []
        source = recovery_inputs(cfg["contacts"], cfg["interactions"], cfg["segments"])
        while True:
            chunk = [x for _, x in zip(range(500), source, strict=False)]
            if not chunk:
                break
            started = time.perf_counter()
            batch = processor.process(chunk, inputs + len(chunk) - 1)
            while processor.backfills:  # go-lives over an empty partition
                processor.store.commit(batch.seq, None)
                batch = processor.process([], None)
            processor.store.commit(batch.seq, None)
            processing += time.perf_counter() - started
            inputs += len(chunk)
            builder, count = producer.create_batch(), 0
            for key, value in batch.changelog:
                if records < sample_max:
                    sample.append((records, key, value))
                records += 1
                key_bytes += len(key)
                value_bytes += len(value or b"")
                keys.add(key)
                if builder.append(key=key, value=value, timestamp=None) is None:
                    pending.append(await producer.send_batch(builder, topic, partition=0))
                    builder = producer.create_batch()
                    builder.append(key=key, value=value, timestamp=None)
                count += 1
            if count:
                pending.append(await producer.send_batch(builder, topic, partition=0))
            if len(pending) > 200:
                await asyncio.gather(*pending)
                pending = []
            if inputs % 100_000 < 500:
                log(f"  {inputs:,} inputs, {records:,} changelog records")
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
        rocks.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return {"inputs": inputs, "records": records, "distinct_keys": len(keys),
            "key_bytes": key_bytes, "value_bytes": value_bytes,
            "mb": round((key_bytes + value_bytes) / 1e6, 1),
            "processor_inputs_per_s": round(inputs / processing),
            "fill_seconds": round(time.monotonic() - t0, 1)}


async def create_compacted(bootstrap: str, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1, topic_configs={
            "cleanup.policy": "compact"})])
    finally:
        await admin.close()


async def delete_topic(bootstrap: str, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


async def recovery(bootstrap: str, cfg: dict, keep_topic: bool = False) -> dict:
    from app.batch_evaluator import loop_settings, loop_topics
    from runtime.keys import Keyspace, contact_key, stored_key
    from runtime.loop import BatchEvaluator
    from runtime.restore import apply_changelog
    from runtime.store import Store

    prefix = f"bench-rec-{uuid.uuid4().hex[:6]}"
    data = Path(tempfile.mkdtemp(prefix="segmentflow-recovery-"))
    settings = Settings(bootstrap_servers=bootstrap, topic_prefix=prefix, partitions=1,
                        data_dir=data)
    topics = loop_topics(settings)
    try:
        await create_compacted(bootstrap, topics.changelog)
        log(f"recovery: filling {topics.changelog} with {cfg['contacts']:,} contacts' state")
        sample: list[tuple[int, bytes, bytes | None]] = []
        fill = await fill_changelog(bootstrap, topics.changelog, cfg, sample)
        log(f"  {fill['records']:,} records, {fill['mb']} MB in {fill['fill_seconds']} s "
            f"(processor {fill['processor_inputs_per_s']:,} inputs/s)")
        evaluator = BatchEvaluator(loop_settings(settings), topics)
        store = evaluator._store
        applied_counts: list[int | None] = []

        async def timed_restore() -> float:
            base = store.assign(0)
            t0 = time.monotonic()
            applied = await evaluator._restore(base, 0)  # records applied (None: older loop)
            seconds = time.monotonic() - t0
            store.revoke(0)
            applied_counts.append(applied)
            return seconds

        full = await timed_restore()
        base = store.assign(0)
        end = base.checkpoint()
        checked = [Workload(contacts=cfg["contacts"]).contact_id(i)
                   for i in random.Random(1).sample(range(cfg["contacts"]), 100)]
        present = sum(1 for c in checked
                      if base.get(stored_key(Keyspace.CONTACTS, contact_key(c))) is not None)
        store.revoke(0)
        db_bytes = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
        log(f"  full restore {full:.1f} s ({fill['records'] / full:,.0f} records/s)")
        # tail only: the store is intact up to T records before the end
        assert end is not None
        tail_n = min(cfg["tail"], end)
        base = store.assign(0)
        base.write({}, end - tail_n)
        store.revoke(0)
        tail_s = await timed_restore()
        nothing_s = await timed_restore()  # checkpoint at the end: nothing to read
        store.close()
        # the same records applied with no broker (what the reader adds)
        loop = loop_settings(settings)
        alone = Store(data / "apply-alone", cache_bytes=loop.cache_bytes,
                      write_buffer_bytes=loop.write_buffer_bytes)
        t0 = time.monotonic()
        apply_changelog(alone.assign(0), sample)
        apply_s = time.monotonic() - t0
        alone.close()
        per_1m = 1_000_000 / cfg["contacts"]
        return {
            "contacts": cfg["contacts"], "interactions_per_contact": cfg["interactions"],
            "segments_live": cfg["segments"], "changelog": fill,
            "changelog_end_offset": end + 1,
            "full_restore_seconds": round(full, 2),
            "full_restore_records_per_s": round(fill["records"] / full),
            "full_restore_mb_per_s": round(fill["mb"] / full, 1),
            "seconds_per_1m_contacts": round(full * per_1m, 1),
            "changelog_mb_per_1m_contacts": round(fill["mb"] * per_1m, 1),
            "restored_db_bytes": db_bytes,
            "sample_contacts_found": f"{present}/100",
            "tail_records": tail_n, "tail_restore_seconds": round(tail_s, 3),
            "tail_records_per_s": round(tail_n / tail_s) if tail_s else None,
            "nothing_to_restore_seconds": round(nothing_s, 3),
            "records_applied_full_tail_nothing": applied_counts,
            "apply_alone_records": len(sample),
            "apply_alone_records_per_s": round(len(sample) / apply_s) if apply_s else None,
        }
    finally:
        shutil.rmtree(data, ignore_errors=True)
        if not keep_topic:
            try:
                await delete_topic(bootstrap, topics.changelog)
            except Exception as exc:  # a leftover bench topic is harmless
                log(f"  could not delete {topics.changelog}: {exc!r}")


# -- summary ----------------------------------------------------------------------------


def _each(run: dict) -> str:
    """Cores used by each worker over the drain."""
    return ", ".join(f"{c / run['seconds']:.2f}" for c in run["cpu_seconds_per_worker"]
                     if c is not None)


def _per_core(run: dict) -> str:
    """Events per CPU-second the workers got: flat = scales with cores."""
    cpu = sum(c for c in run["cpu_seconds_per_worker"] if c is not None)
    return f"{run['events'] / cpu:,.0f}" if cpu else "—"


def _throughput_md(thr: dict) -> str:
    """One throughput result (1, 2, 4 workers) as a table."""
    md = ""
    if thr and "runs" in thr:
        md += ((f"{thr['label']}. " if thr.get("label") else "")
               + f"Throughput: {thr['backlog_events']:,} interactions + markers, "
               f"{thr['segments_live'] - 1} segments, {thr['contacts']:,} contacts, "
               f"{thr['partitions']} partitions, produced while the workers run (group "
               "settled first); CPU in cores over the drain, from /proc.\n\n"
               "| workers | events/s | vs 1 | events per worker CPU-second | "
               "CPU: workers (each) | broker | this bench | other processes | whole machine |\n"
               "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
               + "".join(f"| {x['workers']} | {x['events_per_s']:,.0f} | "
                         f"{x['vs_one_worker']}x | {_per_core(x)} | {x['worker_cores']} "
                         f"({_each(x)}) | "
                         f"{x['broker_cores']} | {x['bench_process_cores']} | "
                         f"{x.get('other_cores')} | "
                         f"{x['machine_cores_busy']} of {x['machine_cores']} |\n"
                         for x in thr["runs"]) + "\n")
    elif thr:
        md += f"Throughput: failed: {thr.get('error', '')[:80]}\n\n"
    return md


def _count(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def _failover_md(fo: dict) -> str:
    """One failover result (standby replicas off and on) as a table."""
    md = ""
    if fo and "runs" in fo:
        md += f"{fo['label']}. " if fo.get("label") else ""
        timeout = fo["runs"][0].get("session_timeout_ms", "default") if fo["runs"] else "default"
        md += (f"Failover: 2 workers, {fo['contacts']:,} contacts + "
               f"{fo['history_interactions']:,} interactions of state, {fo['partitions']} "
               f"partitions, a stream of {fo['stream_rate']:g} inputs/s; kill -9 of one "
               "worker. Served again = kill → the marker of every partition it held "
               "produced its change. The evaluator group's session timeout: "
               + (f"{timeout:,} ms" if isinstance(timeout, int) else
                  "the default (10,000 ms)") + ".\n\n"
               "Phases from the survivor's log (its evaluator consumer group) and its "
               "`/status?local=1` (polled every 0.2 s), in seconds after the kill. An "
               "input also waits for ingest's own group when the victim held its upstream "
               "partition (the same session timeout since f86811b; before, aiokafka's "
               "10 s).\n\n"
               "| standby replicas | victim's partitions, local copies on the survivor, "
               "their changelog records | rebalance seen (session timeout) | assigned | "
               "restored (holds all 16) | served again | probes lost |\n"
               "|---|---|---:|---:|---:|---:|---:|\n")
        for x in fo["runs"]:
            lg = x.get("survivor_log_s_after_kill", {})
            copies = len(x.get("survivor_local_copies_of_victims_before_kill", []))
            md += (f"| {x['standby_replicas']} | {len(x.get('victim_partitions', []))}, "
                   f"{copies}, {_count(x.get('changelog_records_of_victims_partitions'))} | "
                   f"{lg.get('heartbeat_saw_rebalance')} | {lg.get('assigned')} | "
                   f"{x.get('holds_all_s')} | **{x.get('served_again_s')}** | "
                   f"{x['probes_missing']} of {x['probes_sent']} |\n")
        md += "\n"
    elif fo:
        md += f"Failover: failed: {fo.get('error', '')[:80]}\n\n"
    return md


def scale_out_md(r: dict) -> str:
    """The scale-out section of bench/results/SUMMARY.md."""
    md = (f"## Scale-out on Kafka (`{r.get('command', 'bench/scale_out.py')}`, "
          f"{r.get('when', '')[:16]}, a separate run)\n\n"
          + (f"{r['note']}\n\n" if r.get("note") else ""))
    for key in sorted(k for k in r if k.startswith("throughput")):
        md += _throughput_md(r[key])
    for key in sorted(k for k in r if k.startswith("failover")):
        md += _failover_md(r[key])
    rec = r.get("recovery")
    if rec and "full_restore_seconds" in rec:
        ch = rec["changelog"]
        md += (f"Restore from the changelog (`BatchEvaluator._restore`, the worker's path): "
               f"{rec['contacts']:,} contacts ({rec['interactions_per_contact']} interactions "
               f"each, {rec['segments_live']} segments) = {ch['records']:,} records, "
               f"{ch['mb']} MB: full restore {rec['full_restore_seconds']} s "
               f"({rec['full_restore_records_per_s']:,} records/s, "
               f"{rec['full_restore_mb_per_s']} MB/s) → **{rec['seconds_per_1m_contacts']} s "
               f"per 1M contacts** ({rec['changelog_mb_per_1m_contacts']} MB of changelog); "
               f"tail only ({rec['tail_records']:,} records after an intact checkpoint) "
               f"{rec['tail_restore_seconds']} s; nothing to restore "
               f"{rec['nothing_to_restore_seconds']} s. The same records applied with no "
               f"broker (`apply_changelog` alone, first {rec['apply_alone_records']:,}): "
               f"{rec['apply_alone_records_per_s']:,} records/s.\n")
    elif rec:
        md += f"Restore: failed: {rec.get('error', '')[:80]}\n"
    return md


def write_summary_section(result: dict) -> None:
    """Replace (or add) the scale-out section of SUMMARY.md; bench/run.py
    keeps it when it rewrites the summary (it reads scale_out.json)."""
    path = RESULTS / "SUMMARY.md"
    text = path.read_text() if path.exists() else "# Benchmark summary\n"
    start = text.find("## Scale-out on Kafka")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + (text[end + 1:] if end >= 0 else "")
    path.write_text(text.rstrip("\n") + "\n\n" + scale_out_md(result))


# -- main -------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict:
    cfg = CONFIG["quick" if args.quick else "full"]
    parts = [p for p in ("throughput", "failover", "recovery") if getattr(args, p)]
    parts = parts or ["throughput", "failover", "recovery"]
    if args.contacts:
        for part in ("failover", "recovery"):
            cfg[part]["contacts"] = args.contacts
    bootstrap = start_broker()
    log(f"broker {bootstrap}; parts: {', '.join(parts)}")
    result: dict[str, Any] = {"mode": "quick" if args.quick else "full", "config": cfg,
                              "cores": os.cpu_count()}
    t0 = time.monotonic()
    steps = {
        "throughput": lambda: throughput(bootstrap, cfg["throughput"]),
        "failover": lambda: failover(bootstrap, cfg["failover"], args.standby,
                                     args.session_timeout_ms),
        "recovery": lambda: recovery(bootstrap, cfg["recovery"]),
    }
    for part in parts:
        try:
            result[part] = await steps[part]()
        except Exception as exc:  # one part must not sink the others
            import traceback

            traceback.print_exc()
            result[part] = {"error": repr(exc)}
    result["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["elapsed_s"] = round(time.monotonic() - t0, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    parser.add_argument("--throughput", action="store_true", help="part (a) only (combinable)")
    parser.add_argument("--failover", action="store_true", help="part (b) only (combinable)")
    parser.add_argument("--recovery", action="store_true", help="part (c) only (combinable)")
    parser.add_argument("--contacts", type=int, default=0,
                        help="contacts of the failover state and the recovery changelog")
    parser.add_argument("--standby", type=lambda s: [int(x) for x in s.split(",")],
                        default=[0, 1], help="standby_replicas values of the failover runs")
    parser.add_argument("--session-timeout-ms", type=int, default=None,
                        help="SEGMENTFLOW_SESSION_TIMEOUT_MS of the failover workers")
    parser.add_argument("--note", default="", help="a line for SUMMARY.md (e.g. other load)")
    parser.add_argument("--out", default=str(RESULTS / "scale_out.json"))
    args = parser.parse_args()
    result = asyncio.run(run(args))
    result["note"] = args.note
    result["command"] = shlex.join(["bench/scale_out.py", *sys.argv[1:]])
    out = Path(args.out)
    if out == RESULTS / "scale_out.json" and out.exists():
        # keep the parts not run this time
        old = json.loads(out.read_text())
        for part in ("throughput", "failover", "recovery"):
            if part not in result and part in old:
                result[part] = {**old[part], "from_run": old.get("when")}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    if out == RESULTS / "scale_out.json":
        write_summary_section(result)
    print(scale_out_md(result))


if __name__ == "__main__":
    main()
