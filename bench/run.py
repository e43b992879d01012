"""All benchmarks side by side, in one run, measured from outside the worker.

    .venv/bin/python bench/run.py [--quick]

Starts or reuses the local broker (deploy/kafka/kafka.sh), then:

1. service: one worker, 4 partitions, synthetic workload (tools/workload.py),
   sustained events/s with 10 / 100 / 1,000 (/ 10,000 in the full run) live
   segments; latency p50/p99/max at half load with 100 segments; worker RSS
   and RocksDB size; py-spy profiles of the worker draining a backlog, in
   separate scenarios (bench/profile_worker.py);
2. ceiling: a bare aiokafka consume -> produce pipe over copies of the same
   interaction records (bench/ceiling.py) -> service/ceiling, and a bare Faust
   agent pipe over the same copies (bench/faust_ceiling.py) -> service/Faust
   pipe, so Faust's own cost stays visible;
3. lateness of time-driven transitions (bench/lateness.py);
4. batch: DuckDB full recompute at 100k (and 1M) contacts (bench/batch_recompute.py)
   vs the service's produce -> change p50.

Writes bench/results/latest.json (+ a dated copy), PNG charts and
bench/results/SUMMARY.md. Ratios are what to quote: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
import traceback
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backfill
import batch_recompute
import ceiling
import charts
import faust_ceiling
import lateness
import profile_worker
from harness import RESULTS, Scenario, roles_run, scale_out_run, service_run, start_broker

CONFIG = {
    "quick": {"contacts": 4_000, "events": 20_000, "segments": [10, 100, 1000],
              "latency_seconds": 10.0, "ceiling_count": 100_000,
              "faust_ceiling_timeout": 180,
              "batch_contacts": [100_000], "lateness": {"contacts": 200, "spread": 8.0,
                                                        "lead": 5.0},
              "profiles": [(1000, 1000, 600, 8)], "scenario_timeout": 300,
              "backfill_contacts": 20_000, "backfill_timeout": 300,
              "scale_out": (100, 4_000, 8_000)},
    "full": {"contacts": 10_000, "events": 30_000, "segments": [10, 100, 1000, 10_000],
             "latency_seconds": 20.0, "ceiling_count": 300_000,
             "faust_ceiling_timeout": 480,
             "batch_contacts": [100_000, 1_000_000],
             "lateness": {"contacts": 500, "spread": 20.0, "lead": 8.0},
             "profiles": [(100, 4000, 12_000, 15), (1000, 2000, 1500, 20)],
             "scenario_timeout": 900, "backfill_contacts": 1_000_000,
             "backfill_timeout": 3600, "scale_out": (100, 10_000, 30_000)},
}
SECTIONS = ("service", "profiles", "lateness", "scale", "backfill", "batch")
GOALS = {"ratio_100": 0.40, "ratio_10000": 0.25, "p99_ms": 100.0, "late_s": 1.0,
         "backfill_per_s": 100_000, "reflected_x_1m": 1000}


def contacts_for(segments: int, contacts: int) -> int:
    """Fewer contacts with many segments: every contact's setup is evaluated
    against every segment (~40 inputs/s at 1,000 segments here)."""
    if segments >= 10_000:
        return min(contacts, 500)
    if segments >= 1000:
        return min(contacts, max(1000, contacts // 4))
    return contacts


def events_for(segments: int, events: int) -> int:
    """Fewer events with many segments, so every loop stays bounded."""
    if segments >= 10_000:
        return min(events, 500)
    if segments >= 1000:
        return min(events, max(1000, events // 10))
    return events


def log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


async def run_service(bootstrap: str, cfg: dict, result: dict) -> None:
    result["service"] = []
    for segs in cfg["segments"]:
        log(f"service: {segs} live segments")
        try:
            r = await asyncio.wait_for(service_run(
                bootstrap, segs, contacts_for(segs, cfg["contacts"]),
                events_for(segs, cfg["events"]),
                latency_seconds=cfg["latency_seconds"] if segs == 100 else 0.0),
                timeout=cfg["scenario_timeout"])
            result["service"].append(r)
            log(f"  {r['throughput']['events_per_s']} events/s"
                + (f", latency {r['latency']['latency_ms']}" if "latency" in r else ""))
            if segs == 100:
                log("ceiling: bare aiokafka pipe over the same records")
                # the service writes a change + a snapshot record per membership change
                fanout = max(1, round(2 * r["throughput"]["changes_per_event"]))
                result["ceiling"] = await ceiling.ceiling(
                    bootstrap, f"{r['topic_prefix']}.interactions", r["partitions"],
                    cfg["ceiling_count"], fanout=fanout)
                log(f"  {result['ceiling']['events_per_s']} events/s")
                log("ceiling: bare Faust agent pipe over the same records")
                try:
                    result["faust_ceiling"] = await asyncio.wait_for(faust_ceiling.ceiling(
                        bootstrap, result["ceiling"]["input_topic"], r["partitions"],
                        cfg["ceiling_count"], timeout=cfg["faust_ceiling_timeout"]),
                        timeout=2 * cfg["faust_ceiling_timeout"] + 60)
                    log(f"  {result['faust_ceiling']['events_per_s']} events/s (iterate "
                        f"only: {result['faust_ceiling']['iterate_only'].get('events_per_s')})")
                except Exception as exc:  # the service figure stands without it
                    traceback.print_exc()
                    result["faust_ceiling"] = {"error": repr(exc)}
        except Exception as exc:  # record and go on: one scenario must not sink the run
            traceback.print_exc()
            result["service"].append({"segments_live": segs + 1, "error": repr(exc)})
    log("roles: 100 segments, a burst into the running service, ingest in the worker "
        "vs in its own process")
    await versus(result, "roles", roles_run(
        bootstrap, 100, contacts_for(100, cfg["contacts"]), events_for(100, cfg["events"])),
        cfg["scenario_timeout"], "one_process", "ingest_process")


async def versus(result: dict, key: str, scenario: Awaitable[dict], timeout: float,
                 first: str, second: str) -> None:
    """``result[key]``: the figures of a scenario comparing two layouts (or
    its error: one scenario must not sink the run); logs their events/s."""
    try:
        result[key] = await asyncio.wait_for(scenario, timeout=timeout)
        log(f"  {result[key][first]['events_per_s']} vs "
            f"{result[key][second]['events_per_s']} events/s")
    except Exception as exc:
        traceback.print_exc()
        result[key] = {"error": repr(exc)}


async def run_profiles(bootstrap: str, cfg: dict, result: dict) -> None:
    """Separate scenarios (sampling slows the worker a little): py-spy while
    the worker drains a backlog."""
    result["profiles"] = []
    for segs, contacts, events, seconds in cfg["profiles"]:
        log(f"profile: {segs} live segments, {seconds} s of samples")
        profile: dict = {"segments_live": segs + 1}

        async def on_running(sc: Scenario, profile: dict = profile, segs: int = segs,
                             seconds: float = seconds) -> None:
            assert sc.worker is not None and sc.worker.pid is not None
            await sc.worker.wait_ready(timeout=180)
            raw = await profile_worker.record(sc.worker.pid, seconds,
                                              RESULTS / f"profile-{segs}.txt")
            profile.update(profile_worker.summarise(raw) if raw else {"error": "py-spy failed"})

        try:
            r = await asyncio.wait_for(service_run(bootstrap, segs, contacts, events,
                                                   on_running=on_running),
                                       timeout=cfg["scenario_timeout"])
            profile["throughput_while_sampled"] = r["throughput"]
        except Exception as exc:
            traceback.print_exc()
            profile["error"] = repr(exc)
        result["profiles"].append(profile)


def derive(result: dict) -> None:
    ceil = result.get("ceiling", {}).get("events_per_s")
    fceil = result.get("faust_ceiling", {}).get("events_per_s")
    for s in result.get("service", []):
        if fceil and "throughput" in s:
            s["ratio_to_faust_ceiling"] = round(s["throughput"]["events_per_s"] / fceil, 4)
        if "throughput" in s and "changes_per_event" in s["throughput"]:
            # a change record + a snapshot record per membership change
            s["output_records_per_s"] = round(
                2 * s["throughput"]["events_per_s"] * s["throughput"]["changes_per_event"])
            if ceil:
                s["output_records_ratio_to_ceiling"] = round(s["output_records_per_s"] / ceil, 4)
        if ceil and "throughput" in s:
            s["ratio_to_ceiling"] = round(s["throughput"]["events_per_s"] / ceil, 4)
            same = result["ceiling"].get("same_output_volume")
            if same:
                s["ratio_to_same_volume_ceiling"] = round(
                    s["throughput"]["events_per_s"] / same["events_per_s"], 4)
    roles = result.get("roles", {})
    if ceil and "ingest_process" in roles:
        for layout in ("one_process", "ingest_process"):
            roles[layout]["ratio_to_ceiling"] = round(roles[layout]["events_per_s"] / ceil, 4)
    lat = next((s["latency"]["latency_ms"] for s in result.get("service", [])
                if "latency" in s), None)
    if lat and lat["p50"]:
        result["reflected_ms_p50"] = lat["p50"]
        for b in result.get("batch", []):
            b["reflected_x_faster"] = round(1000 * b["recompute_seconds"] / lat["p50"], 1)
    mem = next((s for s in result.get("service", []) if s.get("segments_live") == 101
                and "throughput" in s), None)
    if mem:
        n = mem["contacts"] + 2 * mem["partitions"]
        empty = mem["prepare"]["rss_empty_bytes"] or 0
        result["memory"] = {
            "contacts_loaded": mem["contacts"],
            "rss_bytes": mem["rss_after_backlog_bytes"],
            "rss_empty_worker_bytes": empty,
            "rss_mb_per_100k_contacts": round(
                (mem["rss_after_backlog_bytes"] - empty) / n * 100_000 / 2**20, 1),
            "rocksdb_mb_per_100k_contacts": round(
                mem["data_dir_bytes"] / n * 100_000 / 2**20, 1),
            "note": f"linear extrapolation from {mem['contacts']:,} contacts "
                    f"(+{mem['throughput']['backlog_events']:,} interactions), 101 segments",
        }


def fmt(v, unit: str = "") -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and v >= 100:
        v = round(v)
    return f"{v:,}{unit}" if isinstance(v, int) else f"{v}{unit}"


def summary_md(result: dict, command: str) -> str:
    rows: list[tuple[str, str, str]] = []
    ceil = result.get("ceiling", {}).get("events_per_s")
    rows.append(("ceiling: bare aiokafka pipe, 1 output per input, events/s", fmt(ceil), "—"))
    same = result.get("ceiling", {}).get("same_output_volume")
    if same:
        rows.append((f"ceiling with the service's output volume ({same['fanout']} outputs "
                     "per input, as at 100 segments), events/s",
                     fmt(same["events_per_s"]), "—"))
    fc = result.get("faust_ceiling")
    if fc is not None:
        it = fc.get("iterate_only", {}).get("events_per_s")
        rows.append(("ceiling: bare Faust agent pipe (consume → produce), events/s"
                     + (" (iterate only, no send)" if it else ""),
                     (f"{fmt(fc['events_per_s'])}" + (f" ({fmt(it)})" if it else "")
                      if "events_per_s" in fc else f"failed: {fc.get('error', '')[:60]}"),
                     "—"))
    for s in result.get("service", []):
        segs = s["segments_live"] - 1
        if "throughput" not in s:
            rows.append((f"sustained events/s, {segs:,} live segments",
                         f"failed: {s.get('error', '')[:60]}", ""))
            continue
        ratio = s.get("ratio_to_ceiling")
        goal = {100: "≥ 20% of ceiling", 1000: "≥ 8% of ceiling"}.get(segs, "—")  # #12
        cpe = s["throughput"].get("changes_per_event")
        rows.append((f"sustained events/s, {segs:,} live segments, {s['contacts']:,} contacts "
                     f"(service/ceiling; changes per event)",
                     (f"{fmt(s['throughput']['events_per_s'])} ({100 * ratio:.2f}%"
                      + (f"; {100 * s['ratio_to_same_volume_ceiling']:.1f}% of same-volume pipe"
                         if "ratio_to_same_volume_ceiling" in s else "")
                      + (f"; {100 * s['ratio_to_faust_ceiling']:.1f}% of Faust pipe"
                         if "ratio_to_faust_ceiling" in s else "") + ")"
                      if ratio else fmt(s["throughput"]["events_per_s"]))
                     + (f"; {cpe}" if cpe is not None else ""), goal))
        if "output_records_per_s" in s:
            rows.append((f"  output records/s at {segs:,} segments (records/s vs the pipe's "
                         "records/s)",
                         f"{fmt(s['output_records_per_s'])} "
                         f"({100 * s.get('output_records_ratio_to_ceiling', 0):.1f}%)", "—"))
        if "latency" in s:
            lat = s["latency"]["latency_ms"]
            rows.append((f"produce → change latency at half load "
                         f"({fmt(s['latency']['load_events_per_s'])} ev/s, {lat['samples']:,} "
                         "changes) p50 / p99 / max",
                         f"{lat['p50']} / {lat['p99']} / {lat['max']} ms", "p50 ≤ 10, p99 ≤ 50 ms"))
    roles = result.get("roles", {})
    if "ingest_process" in roles:
        one, own = roles["one_process"], roles["ingest_process"]
        rows.append(("a burst published into the running service, 100 live segments, "
                     "events/s (service/ceiling): ingest in the worker vs in its own process "
                     "(SEGMENTFLOW_ROLE)",
                     f"{fmt(one['events_per_s'])} ({100 * one.get('ratio_to_ceiling', 0):.1f}%) "
                     f"vs {fmt(own['events_per_s'])} "
                     f"({100 * own.get('ratio_to_ceiling', 0):.1f}%)", "—"))
    elif "error" in roles:
        rows.append(("ingest in the worker vs in its own process", f"failed: "
                     f"{roles['error'][:60]}", "—"))
    late = result.get("lateness", {})
    if "lateness_observed_ms" in late:
        lo, le = late["lateness_observed_ms"], late["lateness_emitted_ms"]
        rows.append((f"time-driven lateness, observed - due ({late['left_observed']} of "
                     f"{late['contacts']} contacts) p50 / p99 / max",
                     f"{lo['p50']} / {lo['p99']} / {lo['max']} ms", "p99 ≤ 200 ms"))
        rows.append(("time-driven lateness, emitted `at` - due p50 / p99 / max",
                     f"{le['p50']} / {le['p99']} / {le['max']} ms", "p99 ≤ 200 ms"))
    mem = result.get("memory")
    if mem:
        rows.append(("worker RSS per 100k contacts, extrapolated from "
                     f"{mem['contacts_loaded']:,} (fixed costs counted as per-contact; "
                     "measured at 100k: see Memory below)",
                     f"{mem['rss_mb_per_100k_contacts']} MB", "—"))
        rows.append(("RocksDB size per 100k contacts (extrapolated)",
                     f"{mem['rocksdb_mb_per_100k_contacts']} MB", "—"))
    for b in result.get("batch", []):
        if "recompute_seconds" not in b:
            rows.append((f"DuckDB full recompute, {b.get('contacts', 0):,} contacts",
                         f"failed: {b.get('error', '')[:60]}", ""))
            continue
        goal = "≥ 1,000x" if b["contacts"] >= 1_000_000 else "—"
        rows.append((f"DuckDB full recompute, {b['contacts']:,} contacts / "
                     f"{b['interactions']:,} interactions, {b['segments']} segments",
                     f"{b['recompute_seconds']} s", "—"))
        if "reflected_x_faster" in b:
            rows.append((f"one event reflected: streaming p50 vs full recompute "
                         f"({b['contacts']:,} contacts)",
                         f"{fmt(b['reflected_x_faster'])}x faster", goal))
    bf = result.get("backfill", {})
    if "segments" in bf:
        rows.append((f"loading {bf['contacts']:,} contacts (go-live setup), contacts/s",
                     fmt(round(bf["load"]["setup_inputs"] / bf["load"]["setup_seconds"])),
                     "—"))
        for seg, v in bf["segments"].items():
            rows.append((f"go-live backfill, contacts/s per worker ({seg}, "
                         f"{bf['contacts']:,} contacts)",
                         fmt(v["contacts_per_s"]), "≥ 150,000/s at 1M contacts"))
    else:
        rows.append(("go-live backfill, contacts/s per worker",
                     bf.get("error", "not measured in this run")[:60],
                     "≥ 150,000/s at 1M contacts"))
    sc = result.get("scale_out", {})
    if "two_vs_one" in sc:
        rows.append((f"one vs two workers (live stream, {sc['segments_live'] - 1:,} segments, "
                     f"{sc['partitions']} partitions), events/s",
                     f"{fmt(sc['one_worker']['events_per_s'])} vs "
                     f"{fmt(sc['two_workers']['events_per_s'])} ({sc['two_vs_one']}x)", "—"))
    else:
        rows.append(("one vs two workers", sc.get("error", "not measured in this run")[:60],
                     "—"))
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    prof_md = ""
    for prof in result.get("profiles", []):
        if not prof.get("samples"):
            continue
        prof_md += (f"\n## Profile (py-spy, worker draining the {prof['segments_live'] - 1:,}-"
                    "segment backlog, a separate scenario)\n\n"
                    f"{prof['samples']:,} samples. Inclusive, project code:\n\n"
                    + "\n".join(f"- {pct}% {f}"
                                 for f, pct in prof["inclusive_project_top"][:12])
                    + "\n\nSelf time:\n\n"
                    + "\n".join(f"- {pct}% {f}" for f, pct in prof["self_top"][:10]) + "\n")
    soak = RESULTS / "soak.json"  # bench/soak.py, a separate 10-minute run
    if soak.exists():
        from bench.soak import soak_md
        prof_md += "\n" + soak_md(json.loads(soak.read_text()))
    prof_md += _separate_runs_md()
    return f"""# Benchmark summary

Latest run: {result['when']} ({result['mode']} mode, {result['elapsed_s']:.0f} s),
host {result['host']}. The machine has 2 cores **shared with other engineers'
test runs**: quote the ratios (measured side by side in this run), not the
absolute numbers.

Command: `{command}` — see bench/README.md.

| figure | measured | goal |
|---|---|---|
{table}

Setup: one worker, 4 partitions, Kafka 4.1 on the same host, synthetic workload
(tools/workload.py with the WIDE value pools: 200 campaigns, 40 cities, 40
categories), segments from tools/wide_mix.py (20 templates covering every
condition kind, each segment with its own campaign / city / category and
thresholds), clock = wall. Throughput = backlog produced before the worker
starts, time from ready to every partition's marker. The ceiling pipe reads
copies of the same interaction records (same keys and partitions) and produces
one membership-change-sized record per input; the Faust pipe does the same in
a minimal Faust app (one agent over `stream.events()`, `await topic.send()`,
memory store), timed from its first input to its last output acked. One vs two workers: the same
topics and contacts, half the interactions with one worker running, the other
half after a second worker joined; both produced while the workers run, on
this 2-core host that also runs the broker. The DuckDB recompute runs the same
catalogue (100 segments) in SQL over data of the same shape; its figure is only
the recompute itself (a cron tool adds its schedule interval).
{prof_md}"""


async def main_async(args: argparse.Namespace) -> dict:
    cfg = CONFIG["quick" if args.quick else "full"]
    t0 = time.monotonic()
    result: dict = {"mode": "quick" if args.quick else "full", "config": cfg,
                    "host": f"{platform.node()} ({platform.machine()}, Python "
                            f"{platform.python_version()})"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    bootstrap = start_broker()
    log(f"broker {bootstrap}")
    wanted = set(args.only.split(",")) if args.only else set(SECTIONS)
    result["sections"] = sorted(wanted)
    if "service" in wanted:
        await run_service(bootstrap, cfg, result)
    if "profiles" in wanted:
        await run_profiles(bootstrap, cfg, result)
    if "lateness" in wanted:
        log("lateness of time-driven transitions")
        try:
            result["lateness"] = await lateness.run(bootstrap, **cfg["lateness"])
            log(f"  {result['lateness']['lateness_observed_ms']}")
        except Exception as exc:
            traceback.print_exc()
            result["lateness"] = {"error": repr(exc)}
    if "scale" in wanted:
        segs, contacts, events = cfg["scale_out"]
        log(f"one vs two workers, {segs} segments")
        await versus(result, "scale_out", scale_out_run(bootstrap, segs, contacts, events),
                     cfg["scenario_timeout"], "one_worker", "two_workers")
    if "backfill" in wanted:
        log(f"go-live backfill over {cfg['backfill_contacts']:,} loaded contacts")
        try:
            result["backfill"] = await asyncio.wait_for(
                backfill.run(bootstrap, cfg["backfill_contacts"]),
                timeout=cfg["backfill_timeout"])
            log(f"  {result['backfill']['segments']}")
        except Exception as exc:
            traceback.print_exc()
            result["backfill"] = {"error": repr(exc)}
    result["batch"] = []
    for n in cfg["batch_contacts"] if "batch" in wanted else ():
        log(f"DuckDB full recompute, {n:,} contacts")
        try:
            result["batch"].append(await asyncio.to_thread(batch_recompute.run, n))
            log(f"  {result['batch'][-1]['recompute_seconds']} s")
        except Exception as exc:
            traceback.print_exc()
            result["batch"].append({"contacts": n, "error": repr(exc)})
    derive(result)
    result["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["elapsed_s"] = round(time.monotonic() - t0, 1)
    return result


def _history_md(r: dict) -> str:
    """bench/history_bench.py: retained history's cost and go-live rates."""
    rows = [
        ("load (upserts + interactions, archive written), inputs/s",
         f"{r['load_inputs_per_s']:,}"),
        (f"archive, raw key + value bytes per 100k contacts ({r['events_per_contact']} "
         "events each)", f"{r['archive_raw_bytes_per_100k_contacts'] / 1e6:.1f} MB"),
        ("whole store on disk per 100k contacts (LZ4, after close)",
         f"{r['store_dir_bytes_per_100k_contacts'] / 1e6:.1f} MB"),
        ("go-live of a profile segment (no history read), contacts/s",
         f"{r['go_live_profile']['contacts_per_s']:,}"),
        ('go-live over history: "at least 3 purchases within 180 days", contacts/s',
         f"{r['go_live_over_history']['contacts_per_s']:,}"),
        ('go-live over history: "sum amount ever >= 2000", contacts/s',
         f"{r['go_live_over_history_sum_ever']['contacts_per_s']:,}"),
        ("widening a live window 30 → 90 days, contacts/s",
         f"{r['widen_30_to_90_days']['contacts_per_s']:,}"),
    ]
    if "impact_preview" in r:
        rows.append((f"impact preview of an edit, {r['contacts']:,} contacts",
                     f"{r['impact_preview']['seconds']} s"))
        rows.append((f"backtest, 30 daily points, {r['contacts']:,} contacts",
                     f"{r['backtest_30_days']['seconds']} s"))
    return (f"\n## Retained history (`bench/history_bench.py`, broker-free, "
            f"{r.get('when', '')[:16]})\n\n"
            f"Command: `.venv/bin/python {r.get('command', 'bench/history_bench.py')}`. The "
            "worker's partition processors over real RocksDB stores in one process, each "
            "batch committed at once (no Kafka round trips); "
            f"{r['contacts']:,} contacts x {r['events_per_contact']} purchases over a year, "
            "loaded with no segment defined, then each go-live timed. Figures wander with "
            "the shared machine (earlier runs the same day: go-live over history 1,667-4,248 "
            "contacts/s).\n\n| figure | measured |\n|---|---:|\n"
            + "".join(f"| {a} | {b} |\n" for a, b in rows))


def _golive_md(r: dict) -> str:
    """bench/backfill.py: go-live over contacts already loaded."""
    rows = "".join(f"| {sid} | {g['seconds']} | {g['contacts_per_s']:,.0f} |\n"
                   for sid, g in r["segments"].items())
    return (f"\n## Go-live with {r['contacts']:,} contacts loaded (`bench/backfill.py "
            f"{r['contacts']}`, {r['when'][:16]})\n\n"
            f"One worker, {r['partitions']} partitions, the 20-segment wide mix live; "
            f"{r['load']['setup_inputs']:,} inputs loaded in {r['load']['setup_seconds']} s "
            f"(worker RSS {r['load']['rss_after_setup_bytes'] / 1e6:.1f} MB after the load). "
            "Each segment timed from producing its definition until every partition "
            "reports its backfill complete (goal ≥ 150,000 contacts/s per worker at 1M).\n\n"
            "| segment | seconds | contacts/s |\n|---|---:|---:|\n" + rows)


def _memory_md(r: dict) -> str:
    """bench/memory_bench.py: RSS with the contacts actually loaded."""
    rows = "".join(f"| {p['contacts']:,} | {p['inputs']:,} | {p['rss_mb']} | {p['rocksdb_mb']} |\n"
                   for p in r["points"])
    return (f"\n## Memory with {r['contacts']:,} contacts loaded (`bench/memory_bench.py`, "
            f"{r['when'][:16]})\n\n"
            f"One worker, {r['partitions']} partitions, {r['segments_live']} live segments; "
            f"{r['contacts']:,} contacts and {r['interactions']:,} interactions loaded in "
            f"steps through the service. RSS at {r['contacts']:,} contacts: "
            f"**{r['rss_mb_at_full']} MB** (the empty worker: {r['rss_mb_empty_worker']} MB); "
            f"growth from the first step to the last: **{r['rss_mb_growth_per_100k_contacts']} "
            "MB per 100,000 contacts** (goal ≤ 250 MB per 100k).\n\n"
            "| contacts | inputs | worker RSS MB | RocksDB MB |\n|---:|---:|---:|---:|\n"
            + rows)


def client_hop_md(r: dict) -> str:
    """bench/client_hop.py's section: one forwarding hop, aiokafka vs librdkafka."""
    rows = "".join(
        f"| {int(name.rsplit(' ', 1)[1].removesuffix('/s')):,} | {name.rsplit(' ', 1)[0]} | "
        f"{', '.join(f'{v:,}' for v in figures['cpu_us_per_record'])} | "
        f"{figures['median_us']:,} |\n"
        for name, figures in r["summary"].items())
    return (f"\n## One Kafka hop: aiokafka, confluent-kafka, Kafka transactions "
            f"(`bench/client_hop.py`, {r['at'][:16]})\n\n"
            "A forwarder (consume 4 partitions, produce each record to the same partition "
            "of another topic, acks=all, idempotent, no linger; or its records and input "
            "offsets in a transaction per 100 ms / 10 ms) in a process of its own, "
            f"{r['seconds']:.0f} s at a fixed rate, a read_committed observer; the "
            "forwarders alternate. CPU of the forwarder per record:\n\n"
            "| inputs/s | client | µs per record, each run | median |\n"
            "|---:|---|---|---:|\n" + rows)


def _separate_runs_md() -> str:
    """Sections of the separate benchmarks whose results are kept in git."""
    md = ""
    loop = RESULTS / "batch_loop_100.json"  # bench/batch_loop_bench.py
    if loop.exists():
        r = json.loads(loop.read_text())
        md += (f"\n## Evaluator stage alone (`bench/batch_loop_bench.py`, {r['when'][:16]})\n\n"
               f"{r['segments_live']} segments, {r['contacts']:,} contacts, "
               f"{r['partitions']} partitions: the batch loop "
               f"{r['batch_loop']['events_per_s']:,.0f} events/s over "
               f"{r['batch_loop']['events']:,} interactions vs the bare aiokafka pipe "
               f"{r['aiokafka_pipe']['events_per_s']:,.0f}/s in the same run "
               f"({r['ratio_percent']} %); no ingest hop.\n")
    sweep = RESULTS / "latency_sweep.json"  # bench/latency_sweep.py
    if sweep.exists():
        r = json.loads(sweep.read_text())
        md += (f"\n## Latency at fixed rates (`bench/latency_sweep.py`, {r['when'][:16]})\n\n"
               "| inputs/s | p50 ms | p99 ms | max ms |\n|---:|---:|---:|---:|\n"
               + "".join(f"| {p['rate']:,.0f} | {p['latency_ms']['p50']} | "
                         f"{p['latency_ms']['p99']} | {p['latency_ms']['max']} |\n"
                         for p in r["points"]))
    hop = RESULTS / "client_hop.json"  # bench/client_hop.py
    if hop.exists():
        md += client_hop_md(json.loads(hop.read_text()))
    golive = RESULTS / "golive.json"  # bench/backfill.py CONTACTS
    if golive.exists():
        md += _golive_md(json.loads(golive.read_text()))
    memory = RESULTS / "memory.json"  # bench/memory_bench.py
    if memory.exists():
        md += _memory_md(json.loads(memory.read_text()))
    history = RESULTS / "history_bench.json"  # bench/history_bench.py
    if history.exists():
        md += _history_md(json.loads(history.read_text()))
    scale = RESULTS / "scale_out.json"  # bench/scale_out.py: workers, failover, restore
    if scale.exists():
        from bench.scale_out import scale_out_md
        md += "\n" + scale_out_md(json.loads(scale.read_text()))
    return md


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller run")
    parser.add_argument("--only", default="",
                        help=f"comma-separated sections to run, of: {','.join(SECTIONS)}")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    for s in result.get("service", []):
        s.pop("_scenario", None)
    text = json.dumps(result, indent=2, default=str) + "\n"
    (RESULTS / "latest.json").write_text(text)
    (RESULTS / f"run-{result['when'].replace(':', '')}.json").write_text(text)
    files = charts.draw(result, RESULTS)
    command = ".venv/bin/python bench/run.py" + (" --quick" if args.quick else "") + (
        f" --only {args.only}" if args.only else "")
    (RESULTS / "SUMMARY.md").write_text(summary_md(result, command))
    log(f"wrote latest.json, SUMMARY.md, {', '.join(f.name for f in files)} "
        f"in {RESULTS} ({result['elapsed_s']:.0f} s)")
    print((RESULTS / "SUMMARY.md").read_text())


if __name__ == "__main__":
    main()
