"""Engine micro-benchmark: inputs/s for a realistic mix, vs live segments.

    .venv/bin/python bench/engine_bench.py [--inputs N] [--sizes 10,1000,10000] [--profile]

Segments: 86% profile segments over 100 attributes (one changed attribute
touches ~0.86% of them; each matches ~10% of contacts), 14% behavioural ones
spread over the 14 event types (~1% per type): counts with a ``where`` in a
30-day window, 90-day spend sums, recency. Inputs: 45% profile upserts
changing one attribute, 45% interactions of several types, 10% clock ticks;
2,000 contacts already known (complete profile, 30 interactions in the last
30 days, as in steady state), the clock advancing a few seconds per input.
Reports apply() alone and apply() with the state read from / written to
bytes as the RocksDB table would. Times are process CPU time (the machine is
shared), one core. Writes bench/results/engine_bench.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import Catalog, ContactState, Tick, apply
from models.conditions import (
    AggregateCondition,
    AllOf,
    Comparison,
    Exists,
    LastPerformed,
    Performed,
    RelativeTime,
    RelativeWindow,
)
from models.inputs import EVENT_TYPES, ContactUpsert, Interaction
from models.segments import SegmentDefinition

FIELDS = [f"f{i}" for i in range(100)]
CAMPAIGNS = [f"camp{i}" for i in range(20)]
START = datetime(2026, 1, 1, tzinfo=UTC)


def make_segments(n: int, rng: random.Random) -> list[SegmentDefinition]:
    out: list[SegmentDefinition] = []
    n_behaviour = max(1, round(n * 0.14)) if n >= 100 else max(1, n // 7)
    for i in range(n):
        sid = f"seg{i}"
        if i < n - n_behaviour:
            field = FIELDS[i % len(FIELDS)]
            cond: Any = AllOf(args=[  # ~10% of contacts match each profile segment
                Comparison(field=field, op="=", value=rng.randint(0, 9)),
                Exists(field="email"),
            ])
        else:
            etype = EVENT_TYPES[i % len(EVENT_TYPES)]
            kind = (i // len(EVENT_TYPES)) % 3
            if kind == 0:
                cond = Performed(
                    event_type=etype,
                    where=Comparison(field="campaign", op="=", value=rng.choice(CAMPAIGNS)),
                    count=rng.randint(1, 3),
                    window=RelativeWindow(amount=30, unit="days"),
                )
            elif kind == 1:
                cond = AggregateCondition(func="sum", property="amount", event_type=etype,
                                          window=RelativeWindow(amount=90, unit="days"),
                                          op=">=", value=rng.randint(50, 500))
            else:
                cond = LastPerformed(event_type=etype, op="after",
                                     at=RelativeTime(amount=rng.randint(1, 14), unit="days"))
        out.append(SegmentDefinition(id=sid, name=sid, condition=cond, status="live"))
    return out


def make_inputs(count: int, contacts: int, rng: random.Random) -> list[tuple[Any, datetime]]:
    out: list[tuple[Any, datetime]] = []
    now = START
    types = EVENT_TYPES
    for i in range(count):
        now += timedelta(seconds=rng.randint(1, 6))
        cid = f"c{rng.randrange(contacts)}"
        r = rng.random()
        if r < 0.45:
            inp: Any = ContactUpsert(contact_id=cid, attributes={
                rng.choice(FIELDS): rng.randint(0, 9)})
        elif r < 0.90:
            inp = Interaction(
                event_id=f"e{i}", contact_id=cid, type=rng.choice(types),
                occurred_at=now - timedelta(seconds=rng.randint(0, 3600)),
                properties={"campaign": rng.choice(CAMPAIGNS), "amount": rng.randint(1, 200),
                            "url": "/p/" + str(rng.randint(1, 500))},
            )
        else:
            inp = (Tick(), cid)
        out.append((inp, now))
    return out


def warm_states(catalog: Catalog, contacts: int) -> dict[str, ContactState]:
    """Every contact already known, as in steady state: a complete profile
    and 30 interactions over the previous 30 days."""
    rng = random.Random(1)
    states: dict[str, ContactState] = {}
    for i in range(contacts):
        cid = f"c{i}"
        attrs: dict[str, Any] = {f: rng.randint(0, 9) for f in FIELDS}
        attrs["email"] = f"{cid}@x.io"
        tr = apply(None, ContactUpsert(contact_id=cid, attributes=attrs), catalog, START, {})
        for k in range(30):
            at = START - timedelta(minutes=rng.randint(1, 30 * 1440))
            inp = Interaction(event_id=f"w{i}-{k}", contact_id=cid, type=rng.choice(EVENT_TYPES),
                              occurred_at=at, properties={"campaign": rng.choice(CAMPAIGNS),
                                                          "amount": rng.randint(1, 200)})
            tr = apply(tr.state, inp, catalog, START, {})
        assert tr.state is not None
        states[cid] = tr.state
    return states


def run(catalog: Catalog, inputs: list[tuple[Any, datetime]], warm: dict[str, ContactState], *,
        serialize: bool) -> tuple[float, int]:
    states: dict[str, Any] = (
        {k: v.to_bytes() for k, v in warm.items()} if serialize else dict(warm))
    gc.collect()
    gc.freeze()  # long-lived states: as in a worker, keep them out of young-gen scans
    changes = 0
    t0 = time.process_time()
    for inp, now in inputs:
        if type(inp) is tuple:
            inp, cid = inp
        else:
            cid = inp.contact_id
        st = states.get(cid)
        if serialize and st is not None:
            st = ContactState.from_bytes(st)
        tr = apply(st, inp, catalog, now, {})
        changes += len(tr.changes)
        if tr.state is not None:
            states[cid] = tr.state.to_bytes() if serialize else tr.state
    elapsed = time.process_time() - t0
    gc.unfreeze()
    return elapsed, changes


def affected_per_input(catalog: Catalog, inputs: list[tuple[Any, datetime]]) -> float:
    idx = catalog.index
    total = 0
    for inp, _ in inputs:
        if isinstance(inp, ContactUpsert):
            total += sum(len(idx.by_field.get(k, ())) for k in inp.attributes)
        elif isinstance(inp, Interaction):
            total += len(idx.by_type.get(inp.type, ()))
    return total / len(inputs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--inputs", type=int, default=60_000)
    ap.add_argument("--sizes", default="10,1000,10000")
    ap.add_argument("--contacts", type=int, default=2_000)
    ap.add_argument("--profile", action="store_true", help="pyinstrument the 1,000 case")
    args = ap.parse_args()
    rng = random.Random(7)
    inputs = make_inputs(args.inputs, args.contacts, rng)
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        defs = make_segments(n, random.Random(n))
        t0 = time.process_time()
        cat = Catalog.empty()
        for d in defs:
            cat = cat.put(d)
        build = time.process_time() - t0
        t0 = time.process_time()
        _ = cat.index
        index_s = time.process_time() - t0
        warm = warm_states(cat, args.contacts)
        run(cat, inputs[: len(inputs) // 10], warm, serialize=False)  # warm caches
        if args.profile and n == 1000:
            from pyinstrument import Profiler

            prof = Profiler()
            prof.start()
            run(cat, inputs, warm, serialize=False)
            prof.stop()
            print(prof.output_text(unicode=False, color=False, show_all=False))
        apply_s, changes = min(run(cat, inputs, warm, serialize=False) for _ in range(2))
        ser_s, _ = run(cat, inputs, warm, serialize=True)
        rows.append({
            "live_segments": n,
            "inputs": len(inputs),
            "affected_per_input": round(affected_per_input(cat, inputs), 2),
            "changes_per_input": round(changes / len(inputs), 2),
            "inputs_per_s": round(len(inputs) / apply_s),
            "inputs_per_s_with_state_bytes": round(len(inputs) / ser_s),
            "us_per_input": round(apply_s / len(inputs) * 1e6, 2),
            "catalog_build_s": round(build, 3),
            "index_build_s": round(index_s, 3),
        })
    header = (f"{'live segs':>9} {'affected/input':>14} {'changes/input':>13} {'inputs/s':>10} "
              f"{'w/ state bytes':>14} "
              f"{'us/input':>9} {'put all (s)':>11} {'index (s)':>9}")
    print(header)
    for r in rows:
        print(f"{r['live_segments']:>9} {r['affected_per_input']:>14} "
              f"{r['changes_per_input']:>13} {r['inputs_per_s']:>10} "
              f"{r['inputs_per_s_with_state_bytes']:>14} {r['us_per_input']:>9} "
              f"{r['catalog_build_s']:>11} {r['index_build_s']:>9}")
    out = Path(__file__).resolve().parent / "results" / "engine_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "python": platform.python_version(),
        "machine": platform.machine(),
        "mix": "45% upserts (1 attribute), 45% interactions (14 types), 10% ticks; 2k contacts",
        "results": rows,
    }, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
