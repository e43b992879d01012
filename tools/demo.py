"""``segmentflow demo``: a worker, demo segments, real purchase history
replayed in event time, and membership changes printed as they happen."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from pathlib import Path

import click
import orjson

from app.cli import format_change
from app.client import Publisher, tail
from app.settings import Settings
from app.worker_process import WorkerProcess
from models.segments import SegmentDefinition
from tools.retail_dataset import replay_inputs

__all__ = ["DEMO_SEGMENTS", "run_demo"]

DEMO_SEGMENTS = Path(__file__).resolve().parent.parent / "deploy/demo/segments.json"


async def run_demo(events: int, prefix: str | None) -> int:
    prefix = prefix or time.strftime("demo-%Y%m%d-%H%M%S")
    settings = Settings(
        topic_prefix=prefix, data_dir=Path("data") / prefix, clock="event",
        partitions=4,
    )
    worker = WorkerProcess(settings, Path("data") / prefix / "worker.log")
    click.echo(f"segmentflow demo: broker {settings.bootstrap_servers}, topics {prefix}.*")
    worker.start()
    try:
        waited = await worker.wait_ready()
        click.echo(f"worker ready in {waited:.1f} s (log: {worker.log_path})")
        definitions = [SegmentDefinition.model_validate(d)
                       for d in orjson.loads(DEMO_SEGMENTS.read_bytes())]
        sizes: Counter[str] = Counter()
        changes_seen = 0

        async def show_changes() -> None:
            nonlocal changes_seen
            async for _, value in tail(settings, settings.topics.membership_changes):
                if value is None:
                    continue
                changes_seen += 1
                change = orjson.loads(value)
                sizes[change["segment_id"]] += 1 if change["change"] == "joined" else -1
                click.echo(format_change(value))

        watcher = asyncio.create_task(show_changes())
        async with Publisher(settings) as publisher:
            for definition in definitions:
                await publisher.send(definition)
                click.echo(f"defined segment {definition.id!r}: {definition.formula}")
            await publisher.flush()
            sent = await publisher.send_all(replay_inputs(limit=events))
        click.echo(f"replayed {sent} inputs; waiting for the last changes…")
        await asyncio.sleep(5)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        click.echo(f"\n{changes_seen} membership changes. Current sizes:")
        for definition in definitions:
            click.echo(f"  {definition.id:<24} {sizes[definition.id]:>6}")
        return 0
    finally:
        worker.stop()
