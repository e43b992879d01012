"""The runtime's batch loop (runtime/loop.py) against the bare aiokafka pipe,
side by side in one run on the real broker.

    .venv/bin/python bench/batch_loop_bench.py [--segments 100] [--events 40000]

The workload of bench/run.py (tools/workload.py: 10,000 contacts, 100
accounts, wide segment mix): the segments and the setup inputs (contacts,
accounts) are written to the evaluator's input log as the ingest agent
would and evaluated first; then the interaction backlog is written, and a
fresh loop on the same disk is timed from "partitions restored" until
every input is committed (evaluated, changes and state acknowledged).
The bare pipe (bench/ceiling.py) then copies the same input log.

Measures the evaluator stage only (no ingest hop, no Faust): the figure of
what the runtime layer costs against the pipe. Writes
bench/results/batch_loop.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from aiokafka import AIOKafkaProducer  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402
from ceiling import pipe  # noqa: E402
from harness import RESULTS, make_workload, start_broker  # noqa: E402

from agents.codec import input_payload  # noqa: E402
from models.inputs import AccountUpsert, ContactUpsert, Interaction, StaticEdit  # noqa: E402
from runtime.loop import BatchEvaluator, LoopSettings, LoopTopics  # noqa: E402
from runtime.partitioning import partition_for  # noqa: E402
from runtime.processor import ProcessorConfig  # noqa: E402
from tools.wide_mix import wide_segment_mix  # noqa: E402

_KINDS = {ContactUpsert: "contact", Interaction: "interaction", StaticEdit: "static_edit",
          AccountUpsert: "account"}


async def _create(bootstrap: str, topics: LoopTopics, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    compact = {"cleanup.policy": "compact"}
    try:
        await admin.create_topics([
            NewTopic(topics.input, partitions, 1), NewTopic(topics.changes, partitions, 1),
            NewTopic(topics.snapshot, partitions, 1, topic_configs=compact),
            NewTopic(topics.changelog, partitions, 1, topic_configs=compact),
            NewTopic(topics.dead_letters, 1, 1)])
    finally:
        await admin.close()


async def _write(bootstrap: str, topic: str, partitions: int,
                 envelopes: list[tuple[str, dict[str, Any], str | None]]) -> dict[int, int]:
    """Write envelopes as the ingest agent does; returns end offsets."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_batch_size=1_048_576)
    await producer.start()
    counts = dict.fromkeys(range(partitions), 0)
    try:
        for kind, body, key in envelopes:
            value = orjson.dumps({"kind": kind, "body": body})
            targets = range(partitions) if key is None else [partition_for(key, partitions)]
            for p in targets:
                await producer.send(topic, value, key=(key or kind).encode(), partition=p)
                counts[p] += 1
        await producer.flush()
    finally:
        await producer.stop()
    return counts


def _envelopes(models: list[Any]) -> list[tuple[str, dict[str, Any], str | None]]:
    out = []
    for model in models:
        kind = _KINDS[type(model)]
        key = None if kind == "account" else model.contact_id
        out.append((kind, input_payload(model), key))
    return out


def _loop(bootstrap: str, topics: LoopTopics, group: str, data: Path,
          partitions: int) -> BatchEvaluator:
    settings = LoopSettings(bootstrap=bootstrap, group_id=group, data_dir=data,
                            processor=ProcessorConfig(partitions=partitions))
    return BatchEvaluator(settings, topics)


async def run(segments: int, events: int, contacts: int, partitions: int) -> dict:
    bootstrap = start_broker()
    prefix = f"bl-{uuid.uuid4().hex[:6]}"
    topics = LoopTopics(input=f"{prefix}-in", changes=f"{prefix}-changes",
                        snapshot=f"{prefix}-snapshot", changelog=f"{prefix}-changelog",
                        dead_letters=f"{prefix}-dead")
    await _create(bootstrap, topics, partitions)
    data = Path(tempfile.mkdtemp(prefix="bl-bench-"))
    group = f"{prefix}-evaluator"
    try:
        setup, backlog = make_workload(contacts, events)
        definitions = [m.definition for m in wide_segment_mix(segments)]
        segment_envelopes = [("segment", d.model_dump(mode="json", exclude_none=True), None)
                             for d in definitions]
        ends = await _write(bootstrap, topics.input, partitions,
                            segment_envelopes + _envelopes(setup))
        loop = _loop(bootstrap, topics, group, data, partitions)
        t0 = time.monotonic()
        await loop.start()
        await loop.wait_committed(ends, timeout=1800)
        setup_seconds = time.monotonic() - t0
        await loop.stop()

        added = await _write(bootstrap, topics.input, partitions, _envelopes(backlog))
        ends = {p: ends[p] + added[p] for p in ends}
        loop = _loop(bootstrap, topics, group, data, partitions)
        await loop.start()
        await loop.ready.wait()
        t0 = time.monotonic()
        await loop.wait_committed(ends, timeout=1800)
        seconds = time.monotonic() - t0
        stats = loop.stats
        await loop.stop()
        service = {"events": len(backlog), "seconds": round(seconds, 2),
                   "events_per_s": round(len(backlog) / seconds, 1),
                   "membership_changes": stats.changes, "batches": stats.batches,
                   "dead_letters": stats.dead_letters}
        ceiling = await pipe(bootstrap, topics.input, partitions)
        return {
            "when": datetime.now(UTC).isoformat(),
            "segments_live": segments, "contacts": contacts, "partitions": partitions,
            "setup": {"inputs": len(setup), "seconds": round(setup_seconds, 2)},
            "batch_loop": service,
            "aiokafka_pipe": {k: ceiling[k] for k in ("events", "seconds", "events_per_s")},
            "ratio_percent": round(100 * service["events_per_s"] / ceiling["events_per_s"], 1),
        }
    finally:
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segments", type=int, default=100)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    result = asyncio.run(run(args.segments, args.events, args.contacts, args.partitions))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"batch_loop_{args.segments}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
