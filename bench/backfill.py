"""Go-live backfill rate: contacts re-evaluated per second when a segment
goes live over contacts that are already loaded.

A worker loads ``contacts`` contacts (profiles + accounts, a few events), then
one new live segment is defined; time from producing the definition until
every partition reports ``backfill_complete`` for its version, measured from
outside through ``/segments/{id}/status``. contacts/s = contacts / that time.
The full run (bench/run.py) loads 1,000,000 contacts through Kafka first
(about ten minutes here), then times three go-lives: a profile segment, a
behavioural one and another profile one.
"""

from __future__ import annotations

import asyncio
import time

from harness import Scenario, make_workload, prepare, wait_applied

from app.client import Publisher
from models.segments import SegmentDefinition
from tools.wide_mix import wide_segment_mix


async def run(bootstrap: str, contacts: int = 20_000, partitions: int = 4) -> dict:
    sc = Scenario(bootstrap, partitions=partitions, name="golive")
    try:
        setup, _ = make_workload(contacts, events=0)
        prep = await prepare(sc, [m.definition for m in wide_segment_mix(20)], setup,
                             load_timeout=max(600.0, contacts / 200))
        await sc.start_worker()
        assert sc.worker is not None
        results = {}
        for seg in (
            SegmentDefinition(id="golive-profile", name="golive-profile", status="live",
                              formula='city = "Paris" and age between 30 and 50'),
            SegmentDefinition(id="golive-behaviour", name="golive-behaviour", status="live",
                              formula="performed page_visited at least 2 times "
                                      "within last 7 days"),
            SegmentDefinition(id="golive-profile-2", name="golive-profile-2", status="live",
                              formula='city = "Lyon" and age between 20 and 40'),
        ):
            async with Publisher(sc.settings) as pub:
                t0 = time.monotonic()
                await pub.send(seg)
                await pub.flush()
            await wait_applied(sc.worker, [seg], partitions, timeout=600)
            seconds = time.monotonic() - t0
            results[seg.id] = {"seconds": round(seconds, 2),
                               "contacts_per_s": round(contacts / seconds, 1)}
        return {"contacts": contacts, "partitions": partitions, "load": prep,
                "segments": results}
    finally:
        sc.cleanup()


def main() -> None:
    """``bench/backfill.py [CONTACTS]``: the go-live figures alone (bench/run.py's
    full run measures them at 1,000,000 contacts too); writes
    bench/results/golive.json, which bench/run.py's summary shows."""
    import json
    import sys
    from datetime import UTC, datetime

    from harness import RESULTS, start_broker

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    result = {**asyncio.run(run(start_broker(), n)), "when": datetime.now(UTC).isoformat()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "golive.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
