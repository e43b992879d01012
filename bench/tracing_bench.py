"""What tracing costs on the hot path (issue 16 item 7, docs/tracing.md):
ingest's batch handler and the batch evaluator's per-batch work, without a
broker, side by side:

``before``  the code before tracing (``--before``, default 251a2b7);
``off``     the code with tracing (``--after``, default HEAD), tracing off (the
            default);
``on``      the same code, tracing on: spans through the SDK's BatchSpanProcessor
            to an exporter that drops them (span creation, header parsing and
            writing, the processor's queue; not the OTLP encoding and HTTP
            export, which run on the SDK's export thread).

    .venv/bin/python bench/tracing_bench.py [--rounds 5] [--events 20000]

Each round runs every mode once, in turn (the order alternates), in a fresh
child process that keeps the best of ``--repeat`` measurements (a shared
machine's noise only ever slows a run down), each on fresh stores and the
same workload (tools/workload.py's wide mix, 100 segments, 2,000
contacts, then the interaction backlog, 500 inputs a batch). Evaluator:
``BatchEvaluator._evaluate`` then ``_settle`` per batch on a fake producer
(evaluation, encoding, batching, the local commit). Ingest: the per-batch
handler (agents/ingest.py) over the interactions' raw JSON on a fake
producer. Every record carries an upstream ``traceparent`` header in every
mode (off and before must not read it). Reports the median of the rounds
per mode; writes bench/results/tracing.json. Times are the child process's
CPU time (``time.process_time``: all its threads, the span export thread
included), so that other work on a shared machine does not count; "inputs/s"
is inputs per CPU second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PACKAGES = ("agents", "app", "engine", "models", "runtime", "tools")
UPSTREAM = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
BATCH = 500


# -- the child: one mode, one measurement ------------------------------------------------


class _Builder:
    def __init__(self) -> None:
        self.count = 0

    def append(self, **_: Any) -> Any:
        self.count += 1
        return True

    def close(self) -> None:  # the loop closes a batch before queueing it
        pass


class _Producer:
    """The batch loop's producer calls, acknowledged at once."""

    def __init__(self) -> None:
        self.records = 0

    def create_batch(self) -> _Builder:
        return _Builder()

    async def send_batch(self, builder: _Builder, topic: str, partition: int) -> Any:
        self.records += builder.count
        future = asyncio.get_running_loop().create_future()
        future.set_result(SimpleNamespace(offset=self.records - builder.count))
        return future

    async def send(self, *_: Any, **__: Any) -> Any:  # dead letters, ingest's forwards
        self.records += 1
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def flush(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def reset(self) -> None:
        pass


class _IngestProducer(_Producer):
    """Ingest's producer calls (agents/output.py's OutputProducer since the
    pipelined ingest loop: the batch is created by an awaited call)."""

    async def create_batch(self) -> _Builder:  # type: ignore[override]
        return _Builder()

    async def confirm(self, futures: Any) -> None:
        for future in futures:
            await future

    def send_now(self) -> None:
        pass


def _tracer() -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    return provider.get_tracer("bench")


def _workload(events: int) -> tuple[list[Any], list[Any], list[Any]]:
    """(segment definitions, setup inputs, interaction backlog): bench/harness.py's
    workload, built here so that the tree under test is the only one imported."""
    from datetime import timedelta

    from models.inputs import Interaction
    from tools.wide_mix import wide_segment_mix
    from tools.workload import WIDE, Workload

    workload = Workload(contacts=2000, accounts=100, events=events, seed=3,
                        start=datetime.now(UTC) - timedelta(days=20), pools=WIDE)
    inputs = list(workload.inputs())
    setup = [i for i in inputs if not isinstance(i, Interaction)]
    backlog = [i for i in inputs if isinstance(i, Interaction)]
    return [m.definition for m in wide_segment_mix(100)], setup, backlog


async def _evaluator(mode: str, events: int) -> dict[str, Any]:
    import orjson

    from agents.codec import input_payload
    from models.inputs import AccountUpsert, ContactUpsert, Interaction, StaticEdit
    from runtime.loop import BatchEvaluator, LoopSettings, LoopTopics
    from runtime.processor import PartitionProcessor, ProcessorConfig
    from runtime.staged import StagedStore

    kinds = {ContactUpsert: "contact", Interaction: "interaction", StaticEdit: "static_edit",
             AccountUpsert: "account"}
    definitions, setup, backlog = _workload(events)
    settings = LoopSettings(bootstrap="unused:9092", group_id="g",
                            data_dir=Path(tempfile.mkdtemp(prefix="tracing-bench-")),
                            processor=ProcessorConfig(partitions=1))
    topics = LoopTopics(input="b.in", changes="b.changes", snapshot="b.snapshot",
                        changelog="b.changelog", dead_letters="b.dead")
    extra: dict[str, Any] = {}
    if mode == "on":
        from runtime.evaluator_tracing import EvaluatorTracing
        extra["tracing"] = EvaluatorTracing(_tracer(), input_topic="b.in", group_id="g")
    loop = BatchEvaluator(settings, topics, **extra)
    loop.producer = _Producer()  # type: ignore[assignment]
    loop._queue = asyncio.Queue()  # settled by hand below
    processor = PartitionProcessor(StagedStore(loop._store.assign(0)), settings.processor,
                                   loop.catalogs)
    loop.processors[0] = processor
    offset = 0

    def records(envelopes: list[tuple[str, Any]]) -> list[Any]:
        nonlocal offset
        out = []
        for kind, body in envelopes:
            out.append(SimpleNamespace(
                topic="b.in", partition=0, offset=offset, key=b"k", timestamp=0,
                value=orjson.dumps({"kind": kind, "body": body}),
                headers=[("segmentflow-source", b"b.x:0:%d" % offset),
                         ("traceparent", UPSTREAM)]))
            offset += 1
        return out

    import runtime.loop
    grouped = getattr(runtime.loop, "_Logged", None)  # the acker settles groups since 107f905

    async def run(batch: list[Any]) -> None:
        await loop._evaluate(processor, 0, batch)
        while not loop._queue.empty():
            item = loop._queue.get_nowait()
            await loop._settle(item if grouped is None else grouped([item], []))
            loop._queue.task_done()

    head = [("segment", d.model_dump(mode="json", exclude_none=True)) for d in definitions]
    head += [(kinds[type(m)], input_payload(m)) for m in setup]
    prepared = records(head)
    for i in range(0, len(prepared), BATCH):
        await run(prepared[i:i + BATCH])
    while processor.backfills:
        await run([])
    backlog_records = records([("interaction", input_payload(m)) for m in backlog])
    batches = [backlog_records[i:i + BATCH] for i in range(0, len(backlog_records), BATCH)]
    changes_before = loop.stats.changes
    started = time.process_time()
    for batch in batches:
        await run(batch)
    seconds = time.process_time() - started
    loop._store.close()
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    return {"inputs": len(backlog_records), "seconds": seconds,
            "inputs_per_s": len(backlog_records) / seconds,
            "changes": loop.stats.changes - changes_before}


async def _ingest(mode: str, events: int) -> dict[str, Any]:
    import orjson

    import agents.ingest as ingest
    from agents.codec import input_payload
    from agents.event_types import EventTypeFeed, InteractionGate
    from app.metrics import Metrics
    from app.settings import Settings

    _, _, backlog = _workload(events)
    settings = Settings(bootstrap_servers="unused:1", topic_prefix="b", partitions=4,
                        accept_undeclared_event_types=True)
    topic = SimpleNamespace(get_topic_name=lambda: "b.interactions")
    topics = SimpleNamespace(evaluator_input=SimpleNamespace(get_topic_name=lambda: "b.in"),
                             dead_letters=SimpleNamespace(get_topic_name=lambda: "b.dead"))
    gate = InteractionGate(EventTypeFeed.fixed(), True)
    # the producer ingest had at each revision: created with an await since the pipelined loop
    producer = _IngestProducer() if hasattr(ingest, "IngestHandler") else _Producer()
    args: list[Any] = [topics, settings, topic, None, lambda m: ingest.Route(
        "interaction", m.contact_id, None), Metrics(), producer, gate]
    if mode == "on":
        from agents.ingest_tracing import IngestTracing
        args.append(IngestTracing(_tracer(), group_id="b-ingest"))
    handler = ingest._handler(*args)
    handle = getattr(handler, "handle", handler)  # an IngestHandler since the pipelined loop
    raws = [orjson.dumps(input_payload(m)) for m in backlog]
    events_ = [SimpleNamespace(value=raw, message=SimpleNamespace(
        topic="b.interactions", partition=0, offset=n, key=b"k", timestamp=1.0,
        headers=[("traceparent", UPSTREAM)])) for n, raw in enumerate(raws)]
    batches = [events_[i:i + BATCH] for i in range(0, len(events_), BATCH)]
    started = time.process_time()
    for batch in batches:
        await handle(batch)
    seconds = time.process_time() - started
    return {"inputs": len(events_), "seconds": seconds, "inputs_per_s": len(events_) / seconds}


def child(mode: str, stage: str, events: int, repeat: int = 3) -> None:
    """The best (fastest) of ``repeat`` measurements, each from scratch."""
    run = _evaluator if stage == "evaluator" else _ingest
    results = [asyncio.run(run(mode, events)) for _ in range(repeat)]
    print(json.dumps(max(results, key=lambda r: r["inputs_per_s"])))


# -- the parent: rounds of every mode ------------------------------------------------------


def _tree(rev: str) -> Path:
    """A ``git archive`` of the service's packages at ``rev`` (committed code
    only: what others have uncommitted in the work tree is not measured)."""
    target = Path(tempfile.mkdtemp(prefix=f"tracing-bench-{rev}-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, *PACKAGES],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def _measure(mode: str, stage: str, events: int, trees: dict[str, Path], repeat: int,
             ) -> dict[str, Any]:
    tree = trees["before" if mode == "before" else "after"]
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    for name in [k for k in env if k.startswith("OTEL_") or k == "SEGMENTFLOW_TRACING"]:
        env.pop(name)
    code = (f"import sys; sys.path.insert(0, {str(tree)!r}); "
            f"import importlib.util as u; s = u.spec_from_file_location('tb', {__file__!r}); "
            f"m = u.module_from_spec(s); s.loader.exec_module(m); "
            f"m.child({mode!r}, {stage!r}, {events}, {repeat})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=tempfile.gettempdir(), check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{mode}/{stage} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3,
                        help="measurements per child process, the best one kept")
    parser.add_argument("--before", default="251a2b7", help="the revision before tracing")
    parser.add_argument("--after", default="HEAD", help="the revision with tracing")
    args = parser.parse_args()
    trees = {"before": _tree(args.before), "after": _tree(args.after)}
    after = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.after],
                           capture_output=True, text=True, check=True).stdout.strip()
    modes = ("before", "off", "on")
    runs: dict[str, dict[str, list[float]]] = {s: {m: [] for m in modes}
                                               for s in ("ingest", "evaluator")}
    changes: dict[str, set[int]] = {m: set() for m in modes}
    for number in range(args.rounds):
        for stage in runs:
            order = modes if number % 2 == 0 else tuple(reversed(modes))
            for mode in order:
                result = _measure(mode, stage, args.events, trees, args.repeat)
                runs[stage][mode].append(result["inputs_per_s"])
                if stage == "evaluator":
                    changes[mode].add(result["changes"])
                print(f"round {number + 1} {stage:9} {mode:6} "
                      f"{result['inputs_per_s']:9,.0f} inputs/s", flush=True)
    summary: dict[str, Any] = {}
    for stage, by_mode in runs.items():
        medians = {mode: statistics.median(values) for mode, values in by_mode.items()}
        summary[stage] = {
            "inputs_per_s_median": {m: round(v) for m, v in medians.items()},
            "inputs_per_s_runs": {m: [round(v) for v in vs] for m, vs in by_mode.items()},
            "off_vs_before_percent": round(100 * (medians["off"] / medians["before"] - 1), 1),
            "on_vs_off_percent": round(100 * (medians["on"] / medians["off"] - 1), 1),
        }
    result = {
        "when": datetime.now(UTC).isoformat(),
        "command": " ".join(["bench/tracing_bench.py", *sys.argv[1:]]),
        "before": args.before, "after": after, "rounds": args.rounds, "repeat": args.repeat,
        "events": args.events,
        "batch": BATCH, "segments": 100, "contacts": 2000, "cpus": os.cpu_count(),
        "clock": "process CPU time (time.process_time); inputs_per_s: per CPU second",
        "evaluator_changes": {m: sorted(v) for m, v in changes.items()},
        **summary,
    }
    for tree in trees.values():
        shutil.rmtree(tree, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tracing.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
