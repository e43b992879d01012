"""Soak: steady load for many minutes; the worker's memory must plateau.

One worker, the realistic 100-segment catalogue, a loaded contact base, then
interactions (and a profile change now and then) at a fixed rate. Samples
the worker's RSS every minute, and counts "producer buffer full" warnings
in its log. Not a test: a benchmark, its figures in bench/results/.

    .venv/bin/python bench/soak.py                 # 10 minutes at 300 inputs/s
    .venv/bin/python bench/soak.py --minutes 3 --rate 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.client import Publisher  # noqa: E402
from bench.harness import (  # noqa: E402
    RESULTS,
    Scenario,
    make_workload,
    prepare,
    start_broker,
    wait_idle,
)
from models.inputs import ContactUpsert, Interaction  # noqa: E402
from tools.wide_mix import wide_segment_mix  # noqa: E402
from tools.workload import WIDE, Workload  # noqa: E402

TYPES = ["page_visited", "email_opened", "email_clicked", "purchase", "form_submitted"]


def _input(rng: random.Random, workload: Workload, contacts: int, n: int):
    contact_id = workload.contact_id(rng.randrange(contacts))
    now = datetime.now(UTC)
    if n % 20 == 0:  # a profile change now and then
        return ContactUpsert(contact_id=contact_id, updated_at=now,
                             attributes={"city": rng.choice(WIDE.cities),
                                         "score": rng.randrange(100)})
    return Interaction(
        event_id=f"soak-{n}", contact_id=contact_id, type=rng.choice(TYPES),
        occurred_at=now,
        properties={"amount": round(rng.uniform(5, 400), 2),
                    "category": rng.choice(WIDE.categories),
                    "campaign": rng.choice(WIDE.campaigns)})


def _memory_figures(path: Path) -> list[dict]:
    """The worker's per-minute figures from app/memory_debug.py's dump:
    malloc in use and kept free, RocksDB memtables and block cache (MB)."""
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        r = json.loads(line)
        dbs = r["rocksdb"].values()
        malloc = r.get("malloc") or {}
        rows.append({
            "seconds": r["seconds"], "rss_mb": round(r["rss"] / 2**20, 1),
            "malloc_in_use_mb": round(malloc.get("uordblks", 0) / 2**20, 1),
            "malloc_free_kept_mb": round(malloc.get("fordblks", 0) / 2**20, 1),
            "memtables_mb": round(sum(d["size-all-mem-tables"] or 0 for d in dbs) / 2**20, 1),
            "block_cache_mb": round(max((d["block-cache-usage"] or 0 for d in dbs), default=0)
                                    / 2**20, 1),
            "python_objects": r["gc_objects"]})
    return rows


async def run(bootstrap: str, minutes: float, rate: float, contacts: int,
              partitions: int, memory_debug: Path | None = None) -> dict:
    sc = Scenario(bootstrap, partitions=partitions, name="soak")
    try:
        setup, _ = make_workload(contacts, 0)
        prep = await prepare(sc, [m.definition for m in wide_segment_mix(100)], setup)
        if memory_debug is not None:  # the soak's worker only (it inherits the environment)
            memory_debug.unlink(missing_ok=True)
            os.environ["SEGMENTFLOW_MEMORY_DEBUG"] = str(memory_debug)
            os.environ.setdefault("SEGMENTFLOW_MEMORY_DEBUG_FRAMES", "0")
        await sc.start_worker()
        await wait_idle(sc)
        rng, workload = random.Random(11), Workload(contacts=contacts)
        samples = [{"minute": 0, "rss_mb": round(sc.worker_rss_bytes() / 2**20, 1),
                    "inputs": 0}]
        n = 0
        async with Publisher(sc.settings) as pub:
            start = time.monotonic()
            next_sample = start + 60
            while (now := time.monotonic()) - start < minutes * 60:
                delay = start + n / rate - now
                if delay > 0:
                    await asyncio.sleep(delay)
                await pub.send(_input(rng, workload, contacts, n))
                n += 1
                if time.monotonic() >= next_sample:
                    await pub.flush()
                    samples.append({"minute": len(samples),
                                    "rss_mb": round(sc.worker_rss_bytes() / 2**20, 1),
                                    "inputs": n})
                    print(f"minute {samples[-1]['minute']:>3}: RSS "
                          f"{samples[-1]['rss_mb']} MB after {n} inputs", flush=True)
                    next_sample += 60
            await pub.flush()
        sent_seconds = time.monotonic() - start
        log_text = (sc.data / "worker.log").read_text(errors="replace")
        return {"finished": datetime.now(UTC).isoformat(timespec="minutes"),
                "plateau": plateau(samples), "minutes": minutes, "rate_target": rate,
                "rate_achieved": round(n / sent_seconds, 1), "inputs": n,
                "contacts": contacts, "partitions": partitions, "segments_live": 101,
                "prepare": prep, "rss_per_minute": samples,
                "producer_buffer_full_warnings": log_text.count("producer buffer full"),
                "memory_per_minute": _memory_figures(memory_debug) if memory_debug else None,
                "data_dir_bytes": sc.data_dir_bytes()}
    finally:
        sc.cleanup()


# Plateaued: RSS grew less than this over the last third of the run, by a
# least-squares line through the minutes of that third (RSS swings by several
# MB from minute to minute as memtables fill and flush and the heap is
# trimmed: first and last samples alone would mislead).
PLATEAU_MB = 5.0


def plateau(samples: list[dict]) -> dict:
    """RSS growth over the last third of the run (at least its last 3
    minutes); plateaued when under PLATEAU_MB."""
    points = [(s["minute"], s["rss_mb"]) for s in samples
              if s["rss_mb"] is not None and s["minute"] > 0]
    if len(points) < 4:
        return {"last_third_growth_mb": None, "plateaued": None}
    tail = points[-max(3, len(points) // 3):]
    mean_x = sum(x for x, _ in tail) / len(tail)
    mean_y = sum(y for _, y in tail) / len(tail)
    slope = (sum((x - mean_x) * (y - mean_y) for x, y in tail)
             / sum((x - mean_x) ** 2 for x, _ in tail))
    growth = round(slope * (tail[-1][0] - tail[0][0]), 1)
    return {"from_minute": tail[0][0], "to_minute": tail[-1][0],
            "mb_per_minute": round(slope, 2), "last_third_growth_mb": growth,
            "threshold_mb": PLATEAU_MB, "plateaued": growth < PLATEAU_MB}


def soak_md(result: dict) -> str:
    """The soak section of bench/results/SUMMARY.md."""
    rss = result["rss_per_minute"]
    rows = "\n".join(f"| {r['minute']} | {r['inputs']:,} | {r['rss_mb']} |" for r in rss)
    flat = plateau(rss)
    if flat["plateaued"] is None:
        verdict = "too short to tell whether RSS plateaued"
    else:
        verdict = (f"Over the last third (minutes {flat['from_minute']} to "
                   f"{flat['to_minute']}) RSS grew {flat['last_third_growth_mb']} MB "
                   f"({flat['mb_per_minute']} MB a minute, least squares): "
                   + ("plateaued" if flat["plateaued"] else "**not** plateaued")
                   + f" (threshold {flat['threshold_mb']:g} MB)")
    note = f"\n{result['note']}\n" if result.get("note") else ""
    return f"""## Soak (`{result.get('command', 'bench/soak.py')}`, a separate run)

{result['minutes']:g} minutes at {result['rate_achieved']:,} inputs/s (target
{result['rate_target']:g}), {result['contacts']:,} contacts, {result['partitions']}
partitions, {result['segments_live']} live segments; "producer buffer full"
warnings: {result['producer_buffer_full_warnings']}. {verdict}.
{note}
| minute | inputs sent | worker RSS MB |
|---:|---:|---:|
{rows}
{_memory_md(result.get("memory_per_minute"))}"""


def _memory_md(rows: list[dict] | None) -> str:
    if not rows:
        return ""
    lines = "\n".join(
        f"| {r['seconds'] / 60:.1f} | {r['rss_mb']} | {r['malloc_in_use_mb']} | "
        f"{r['malloc_free_kept_mb']} | {r['memtables_mb']} | {r['block_cache_mb']} |"
        for r in rows)
    return f"""
The worker's own figures (`--memory-debug`, app/memory_debug.py; minutes
since the worker started):

| minute | RSS MB | malloc in use MB | malloc free kept MB | RocksDB memtables MB | block cache MB |
|---:|---:|---:|---:|---:|---:|
{lines}
"""


def write_summary_section(result: dict) -> None:
    """Replace (or add) the soak section of SUMMARY.md; bench/run.py keeps
    it when it rewrites the summary (it reads soak.json)."""
    path = RESULTS / "SUMMARY.md"
    text = path.read_text() if path.exists() else "# Benchmark summary\n"
    start = text.find("## Soak")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + (text[end + 1:] if end >= 0 else "")
    path.write_text(text.rstrip("\n") + "\n\n" + soak_md(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--out", default=str(RESULTS / "soak.json"))
    parser.add_argument("--memory-debug", type=Path, default=None, metavar="FILE",
                        help="the worker dumps malloc, RocksDB and (with "
                             "SEGMENTFLOW_MEMORY_DEBUG_FRAMES>0) tracemalloc figures "
                             "into FILE every minute (app/memory_debug.py)")
    parser.add_argument("--note", default="", help="a line for SUMMARY.md (e.g. other load)")
    args = parser.parse_args()
    result = asyncio.run(run(start_broker(), args.minutes, args.rate, args.contacts,
                             args.partitions, args.memory_debug))
    result["note"] = args.note
    result["command"] = shlex.join(["bench/soak.py", *sys.argv[1:]])
    Path(args.out).write_text(json.dumps(result, indent=2))
    if Path(args.out) == RESULTS / "soak.json":
        write_summary_section(result)
    rss = result["rss_per_minute"]
    print(f"RSS minute 1: {rss[1]['rss_mb'] if len(rss) > 1 else '-'} MB, "
          f"minute {rss[-1]['minute']}: {rss[-1]['rss_mb']} MB; "
          f"producer buffer full: {result['producer_buffer_full_warnings']}; "
          f"rate {result['rate_achieved']}/s -> {args.out}")


if __name__ == "__main__":
    main()
