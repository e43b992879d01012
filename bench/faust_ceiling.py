"""The second ceiling: a bare Faust agent pipe over the same records as the
aiokafka ceiling (bench/ceiling.py), so Faust's own cost stays visible.

A minimal Faust app (own app id, ``store="memory://"``, web disabled, raw
serializers) runs in a subprocess. Its one agent iterates ``stream.events()``
over the filled input topic and, per input record, ``await topic.send(...)``s
one membership-change-sized record (the aiokafka pipe's payload) keyed by the
input key, to the same partition of its own output topic. Producer batching is
tuned like the aiokafka pipe's (linger 20 ms, 1 MB batches, acks=all).

Time = first input event in the agent -> last output acked (the aiokafka pipe:
consumer assigned -> last output acked); Faust's start-up and rebalance are not
counted. An outside consumer then checks that every output record arrived and
gives the span of their produce timestamps as a cross-check. The
``iterate_only`` variant runs a second app that only iterates (no send): time =
first -> last input event.

    .venv/bin/python bench/faust_ceiling.py [--count 5000]   # standalone
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ceiling import CHANGE_SAMPLE

# --- the worker (subprocess) -------------------------------------------------

def worker_main(args: argparse.Namespace) -> None:
    import faust

    app = faust.App(
        args.app_id, broker=[f"kafka://{h}" for h in args.bootstrap.split(",")],
        store="memory://", topic_partitions=args.partitions, web_enabled=False,
        producer_linger_ms=20, producer_max_batch_size=1_048_576, producer_acks=-1,
        consumer_max_fetch_size=4_194_304, broker_max_poll_records=10_000,
        topic_allow_declare=False)
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
           "value_serializer": "raw"}
    source = app.topic(args.source, **raw)
    out = app.topic(args.out, partitions=args.partitions, **raw) if args.out else None
    payload = CHANGE_SAMPLE
    report = Path(args.report)

    @app.agent(source)
    async def pipe(stream):
        n, first, last_fut = 0, 0.0, {}
        async for event in stream.events():
            if n == 0:
                first = time.monotonic()
            if out is not None:
                partition = event.message.partition
                last_fut[partition] = await out.send(key=event.key, value=payload,
                                                     partition=partition)
            n += 1
            if n >= args.count:
                for fut in last_fut.values():
                    await fut
                elapsed = time.monotonic() - first
                tmp = report.with_suffix(".tmp")
                tmp.write_text(json.dumps({"events": n, "seconds": round(elapsed, 3),
                                           "events_per_s": round(n / elapsed, 1)}))
                tmp.rename(report)

    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


# --- the driver ----------------------------------------------------------------

async def _admin(bootstrap: str, create: list[str] = (), delete: list[str] = (),
                 partitions: int = 4) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if create:
            await admin.create_topics([NewTopic(t, partitions, 1) for t in create])
        if delete:
            existing = set(await admin.list_topics())
            gone = [t for t in delete if t in existing]
            if gone:
                await admin.delete_topics(gone)
    finally:
        await admin.close()


async def _read_output(bootstrap: str, topic: str, partitions: int) -> dict:
    """Outside consumer: records in the output topic, span of their timestamps."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_poll_records=10_000)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        n, lo, hi = 0, None, None
        remaining = {tp for tp in tps if end[tp] > 0}
        deadline = time.monotonic() + 60
        while remaining and time.monotonic() < deadline:
            for tp, rs in (await consumer.getmany(timeout_ms=500)).items():
                n += len(rs)
                for r in (rs[0], rs[-1]) if rs else ():
                    lo = r.timestamp if lo is None else min(lo, r.timestamp)
                    hi = r.timestamp if hi is None else max(hi, r.timestamp)
                if rs and rs[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    span = (hi - lo) / 1000 if lo is not None else None
    return {"records": n, "timestamp_span_seconds": span,
            "events_per_s_by_timestamps": round(n / span, 1) if span else None}


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def run_app(bootstrap: str, source: str, partitions: int, count: int,
                  send: bool = True, timeout: float = 300) -> dict:
    """One Faust app over ``count`` records of ``source`` in a subprocess."""
    tag = uuid.uuid4().hex[:6]
    app_id = f"bench-faust-ceiling-{tag}"
    out = f"{source}.faust-ceiling-{tag}" if send else ""
    if out:
        await _admin(bootstrap, create=[out], partitions=partitions)
    tmp = Path(tempfile.mkdtemp(prefix="segmentflow-faust-ceiling-"))
    report = tmp / "report.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--bootstrap", bootstrap,
           "--app-id", app_id, "--source", source, "--out", out, "--partitions",
           str(partitions), "--count", str(count), "--report", str(report)]
    log = (tmp / "worker.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=tmp, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    t0 = time.monotonic()
    try:
        while not report.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"faust worker exited {proc.returncode}: "
                                   + (tmp / "worker.log").read_text()[-500:])
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"faust pipe: no report after {timeout} s")
            await asyncio.sleep(0.2)
        result = json.loads(report.read_text())
        result["wall_seconds_incl_startup"] = round(time.monotonic() - t0, 1)
        result["send"] = send
        if out:
            result["output_bytes"] = len(CHANGE_SAMPLE)
            result["outside"] = await _read_output(bootstrap, out, partitions)
        return result
    finally:
        await asyncio.to_thread(_stop, proc)
        log.close()
        # the app's own topics (assignor leader etc.) carry its id as prefix
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            own = [t for t in await admin.list_topics() if t.startswith(app_id)]
        finally:
            await admin.close()
        await _admin(bootstrap, delete=own + ([out] if out else []))
        shutil.rmtree(tmp, ignore_errors=True)


async def ceiling(bootstrap: str, source: str, partitions: int, count: int,
                  timeout: float = 300, iterate_only: bool = True) -> dict:
    """The Faust pipe (consume -> produce) over ``source`` (``count`` records,
    e.g. bench/ceiling.py's filled topic), and the iterate-only variant."""
    result = await run_app(bootstrap, source, partitions, count, send=True, timeout=timeout)
    if result["outside"]["records"] < count:
        result["error"] = f"only {result['outside']['records']} of {count} outputs"
    if iterate_only:
        try:
            result["iterate_only"] = await run_app(bootstrap, source, partitions, count,
                                                   send=False, timeout=timeout)
        except Exception as exc:  # the main figure stands on its own
            result["iterate_only"] = {"error": repr(exc)}
    return result


async def standalone(bootstrap: str, count: int, partitions: int, size: int) -> dict:
    """Fill a fresh topic with ``count`` records of ``size`` bytes, run both."""
    source = f"bench-faust-ceiling-in-{uuid.uuid4().hex[:6]}"
    await _admin(bootstrap, create=[source], partitions=partitions)
    try:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                    max_batch_size=1_048_576)
        await producer.start()
        try:
            value = b"x" * size
            for i in range(count):
                await producer.send(source, value, key=f"c{i % 5000:06d}".encode())
            await producer.flush()
        finally:
            await producer.stop()
        return await ceiling(bootstrap, source, partitions, count)
    finally:
        await _admin(bootstrap, delete=[source])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--app-id", default="")
    p.add_argument("--source", default="")
    p.add_argument("--out", default="")
    p.add_argument("--report", default="")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--count", type=int, default=5000)
    p.add_argument("--size", type=int, default=300, help="standalone: input record bytes")
    args = p.parse_args()
    if args.worker:
        worker_main(args)
        return
    print(json.dumps(asyncio.run(standalone(args.bootstrap, args.count, args.partitions,
                                            args.size)), indent=2))


if __name__ == "__main__":
    main()
