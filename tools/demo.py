"""``segmentflow demo``: a worker on the event clock, the demo segments
(deploy/demo/segments.json), the Online Retail purchase history replayed day
by day, then a trickle of synthetic purchases, one simulated day at a time,
so that windows visibly expire. Runs until Ctrl-C (or ``once`` /
``trickle_days`` for tests).

Deterministic: the same command prints the same standard output on every
run, whatever the machine's speed.

- The worker runs with ``SEGMENTFLOW_CLOCK=event``: ``now`` is the event time
  of the inputs, never the wall clock, and changes carry that time.
- Inputs of different upstream topics are not ordered with each other, so
  the demo never has two topics in flight at once: each simulated day is
  sent in two phases (the day's new contacts, then its purchases and
  returns), and each phase ends with a *clock marker* per partition, a new
  contact that joins the hidden ``demo-clock`` segment. A marker's change is
  the last output of its partition for that phase (one ordered log per
  partition), so once every marker has joined, the phase is completely
  processed. The interaction markers also move every partition's event
  clock to the end of the day, which wakes the windows that expire by then.
- Contacts first seen on a day are upserted with the day's start as their
  update time, before the day's purchases (the replay in file order would
  put each just before its first purchase, on another topic).
- A day's changes are printed once the day is processed, sorted by event
  time, contact, segment and sequence: the order the partitions' outputs
  arrive in does not show.

Standard output carries only what is deterministic (segments, days,
changes, sizes); the run's topic prefix, timings and the API help go to
standard error.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import click
import orjson
from aiokafka import AIOKafkaConsumer

from agents.partitioning import one_key_per_partition
from app.cli_kafka import format_change
from app.client import Publisher
from app.settings import Settings, secret_value
from app.worker_process import WorkerProcess
from models.change_events import native_change
from models.inputs import ContactUpsert, Interaction
from models.segments import SegmentDefinition
from tools.retail_dataset import replay_inputs

__all__ = ["DEMO_SEGMENTS", "SYNC_SEGMENT", "demo_segments", "replay_days", "run_demo",
           "trickle_days"]

DEMO_SEGMENTS = Path(__file__).resolve().parent.parent / "deploy/demo/segments.json"
DEMO_PARTITIONS = 4
TRICKLE_SEED = 14

# Joined by the clock markers only (see the module docstring).
SYNC_SEGMENT = SegmentDefinition(
    id="demo-clock", status="live",
    name="demo: clock markers (one contact per partition per replayed day)",
    formula="demo_clock exists or performed email_sent where demo_clock exists ever")


def demo_segments() -> list[SegmentDefinition]:
    return [SegmentDefinition.model_validate(d) for d in orjson.loads(DEMO_SEGMENTS.read_bytes())]


@dataclass
class Day:
    """One simulated day: contacts first seen that day, then its interactions."""

    start: datetime
    contacts: list[ContactUpsert] = field(default_factory=list)
    interactions: list[Interaction] = field(default_factory=list)
    synthetic: bool = False

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=1)

    def headline(self) -> str:
        purchases = sum(1 for i in self.interactions if i.type == "purchase")
        returns = len(self.interactions) - purchases
        what = "synthetic trickle" if self.synthetic else "Online Retail"
        new = f", {len(self.contacts)} new contacts" if self.contacts else ""
        return (f"── {self.start:%Y-%m-%d} ({what}): {purchases} purchase lines, "
                f"{returns} returns{new}")


def _day_of(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def replay_days(events: int) -> Iterator[Day]:
    """The first ``events`` interactions of the purchase history, by UTC day.
    A contact's upsert carries the start of the day it is first seen."""
    day: Day | None = None
    for model in replay_inputs(limit=events):
        moment = model.occurred_at if isinstance(model, Interaction) else model.updated_at
        assert moment is not None
        start = _day_of(moment)
        if day is None or day.start != start:
            if day is not None:
                yield day
            day = Day(start)
        if isinstance(model, ContactUpsert):
            day.contacts.append(model.model_copy(update={"updated_at": start}))
        else:
            day.interactions.append(model)
    if day is not None:
        yield day


def trickle_days(contact_ids: list[str], start: datetime, seed: int = TRICKLE_SEED
                 ) -> Iterator[Day]:
    """Endless synthetic days from ``start``: a few known customers each buy
    a basket of lines (so some join), now and then one returns something;
    everyone else's windows age and expire. Seeded: the same days every run."""
    rng = random.Random(seed)
    n = 0
    while True:
        day = Day(start, synthetic=True)
        for _ in range(rng.randint(1, 4)):
            contact_id = rng.choice(contact_ids)
            at = start + timedelta(hours=rng.randint(8, 19), minutes=rng.randrange(60))
            for _ in range(rng.randint(1, 12)):
                n += 1
                day.interactions.append(Interaction(
                    event_id=f"trickle-{n}", contact_id=contact_id, type="purchase",
                    occurred_at=at, properties={"amount": round(rng.uniform(2, 150), 2)}))
        if rng.random() < 0.3:
            n += 1
            day.interactions.append(Interaction(
                event_id=f"trickle-{n}", contact_id=rng.choice(contact_ids), type="return",
                occurred_at=start + timedelta(hours=rng.randint(8, 19)),
                properties={"amount": round(rng.uniform(2, 50), 2)}))
        day.interactions.sort(key=lambda i: (i.occurred_at, i.event_id))
        yield day
        start += timedelta(days=1)


class Output:
    """Changes scroll; the size table stays at the bottom on a terminal
    (redrawn after each day), or is one line per day otherwise."""

    def __init__(self, segment_ids: list[str], live: bool, footer: str) -> None:
        self.segment_ids = list(segment_ids)
        self.live = live
        self.footer = footer
        self._drawn = 0  # lines of the table currently on screen

    def _erase(self) -> None:
        if self._drawn:
            sys.stdout.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def lines(self, lines: list[str]) -> None:
        self._erase()
        for line in lines:
            click.echo(line)

    def table_lines(self, sizes: dict[str, int], at: datetime | None) -> list[str]:
        when = f" at {at:%Y-%m-%d %H:%M}" if at else ""
        rows = [f"segment sizes{when}:"]
        rows += [f"  {sid:<24} {sizes.get(sid, 0):>6}" for sid in self._ids(sizes)]
        return rows

    def _ids(self, sizes: dict[str, int]) -> list[str]:
        return self.segment_ids + sorted(s for s in sizes if s not in self.segment_ids)

    def sizes(self, sizes: dict[str, int], at: datetime) -> None:
        if self.live:
            self._erase()
            rows = [click.style(r, bold=True) for r in self.table_lines(sizes, at)]
            rows.append(click.style(self.footer, dim=True))
            for row in rows:
                click.echo(row)
            self._drawn = len(rows)
        else:
            click.echo("sizes: " + ", ".join(f"{sid} {sizes.get(sid, 0)}"
                                             for sid in self._ids(sizes)))

    def final(self, sizes: dict[str, int], at: datetime | None) -> None:
        self._erase()
        click.echo("")
        for row in self.table_lines(sizes, at):
            click.echo(row)


class ChangeLog:
    """Reads the membership-changes topic from the start: folds sizes
    (consumer-side sequence filter) and notices clock markers joining."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pending: list[tuple[dict[str, Any], bytes]] = []  # not printed yet
        self.markers: set[str] = set()
        self.sizes: dict[str, int] = {}
        self._last: dict[tuple[str, str], int] = {}
        self._arrived = asyncio.Condition()
        self._consumer = AIOKafkaConsumer(
            settings.topics.membership_changes, bootstrap_servers=settings.bootstrap_servers,
            auto_offset_reset="earliest", enable_auto_commit=False, group_id=None,
            metadata_max_age_ms=1000)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    if record.value is not None:
                        self._add(record.value)
            if batches:
                async with self._arrived:
                    self._arrived.notify_all()

    def _add(self, raw: bytes) -> None:
        change = native_change(raw)  # whatever SEGMENTFLOW_CHANGES_FORMAT the worker has
        segment_id, contact_id = change["segment_id"], change["contact_id"]
        if segment_id == SYNC_SEGMENT.id:
            if change["change"] == "joined":
                self.markers.add(contact_id)
            return
        key = (segment_id, contact_id)
        if change["sequence"] <= self._last.get(key, 0):
            return  # a replay after a crash: already counted
        self._last[key] = change["sequence"]
        self.sizes[segment_id] = (self.sizes.get(segment_id, 0)
                                  + (1 if change["change"] == "joined" else -1))
        self.pending.append((change, raw))

    async def wait_markers(self, markers: set[str], worker: WorkerProcess,
                           timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        async with self._arrived:
            while not markers <= self.markers:
                if time.monotonic() > deadline:
                    raise click.ClickException(
                        f"the worker did not process the demo's inputs within {timeout:.0f} s; "
                        f"see {worker.log_path}")
                if not await _alive(worker):
                    raise click.ClickException(f"the worker stopped; see {worker.log_path}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), 1.0)

    def take(self, order: list[str]) -> list[str]:
        """The changes not printed yet, in a stable order, as lines."""
        rank = {sid: n for n, sid in enumerate(order)}
        taken, self.pending = self.pending, []
        taken.sort(key=lambda item: (item[0]["at"], item[0]["contact_id"],
                                     rank.get(item[0]["segment_id"], len(rank)),
                                     item[0]["segment_id"], item[0]["sequence"]))
        return [format_change(raw) for _, raw in taken]


async def _alive(worker: WorkerProcess) -> bool:
    """The worker answers /health (a dead one does not)."""
    try:
        async with aiohttp.ClientSession() as session, session.get(
                worker.url + "/health", timeout=aiohttp.ClientTimeout(total=5)) as response:
            return response.status == 200
    except (TimeoutError, aiohttp.ClientError):
        return False


async def _wait_applied(settings: Settings, url: str, definition: SegmentDefinition,
                        timeout: float = 60.0) -> None:
    """Every partition applied the definition and finished its backfill."""
    token = secret_value(settings.api_read_token) or secret_value(settings.api_token)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(headers=headers) as session:
        while time.monotonic() < deadline:
            async with session.get(f"{url}/segments/{definition.id}/status") as response:
                seen = (await response.json()).get("partitions", {}) if response.ok else {}
            if len(seen) == settings.partitions and all(
                    p["version"] == definition.version and p["backfill_complete"]
                    for p in seen.values()):
                return
            await asyncio.sleep(0.1)  # applied state is polled: nothing notifies it
    raise click.ClickException(f"segment {definition.id} not applied after {timeout:.0f} s")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _cli_command() -> str:
    """How to call the CLI from here: ``segmentflow`` when it is on the PATH,
    else the path of the one next to this Python (``.venv/bin/segmentflow``)."""
    if shutil.which("segmentflow"):
        return "segmentflow"
    beside = Path(sys.executable).parent / "segmentflow"
    with contextlib.suppress(ValueError):
        return str(beside.relative_to(Path.cwd()))
    return str(beside)


def _api_help(settings: Settings, url: str, open_writes: bool) -> str:
    segmentflow = _cli_command()
    cli = f"SEGMENTFLOW_API_URL={url} {segmentflow}"
    auth = ("reads and writes open, a local demo" if open_writes
            else "writes need the token of SEGMENTFLOW_API_TOKEN")
    return "\n".join([
        f"API: {url} ({auth}). In another terminal:",
        f"  curl -s {url}/segments",
        f"  curl -s '{url}/segments/frequent-buyers/members?limit=5'",
        f"  curl -s '{url}/contacts/c12748/explain/frequent-buyers?format=text'",
        f"  {cli} list",
        f"  {cli} members frequent-buyers --limit 5",
        f"  {cli} explain c12748 frequent-buyers",
        f"  KAFKA_BOOTSTRAP_SERVERS={settings.bootstrap_servers} "
        f"SEGMENTFLOW_TOPIC_PREFIX={settings.topic_prefix} {segmentflow} watch --from-beginning",
        f"Web console: {url}/ui. OpenAPI document: {url}/openapi.json. "
        "Ctrl-C stops the demo.",
    ])


async def run_demo(events: int, prefix: str | None, *, web_port: int | None = None,
                   trickle: int | None = None, pace: float = 1.0) -> int:
    """Replay ``events`` interactions, then ``trickle`` synthetic days (None:
    until cancelled), one every ``pace`` seconds. Returns the exit code."""
    base = Settings()
    prefix = prefix or time.strftime("demo-%Y%m%d-%H%M%S")
    open_writes = (base.api_token is None and base.web_host in ("127.0.0.1", "localhost"))
    settings = Settings(
        topic_prefix=prefix, data_dir=base.data_dir / prefix, clock="event",
        partitions=DEMO_PARTITIONS, web_port=web_port or base.web_port,
        api_open_writes=open_writes or base.api_open_writes)
    if not _port_free(settings.web_host, settings.web_port):
        raise click.ClickException(
            f"port {settings.web_port} is in use (a worker already running?): "
            "stop it or pass --web-port")
    definitions = demo_segments()
    order = [d.id for d in definitions]
    live = sys.stdout.isatty()
    info = click.get_text_stream("stderr")
    worker = WorkerProcess(settings, settings.data_dir / "worker.log")
    click.echo(f"segmentflow demo: broker {settings.bootstrap_servers}, topics {prefix}.*, "
               f"worker log {worker.log_path}", file=info)
    # SIGTERM stops the demo as Ctrl-C does: the worker is stopped too.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    async with Publisher(settings) as publisher:  # fails fast when no broker
        worker.start()
        changes = ChangeLog(settings)
        output = Output(order, live, f"API {worker.url} · Ctrl-C stops the demo")
        last_at: datetime | None = None
        try:
            waited = await worker.wait_ready()
            click.echo(f"worker ready in {waited:.1f} s (event clock, "
                       f"{settings.partitions} partitions)", file=info)
            click.echo(_api_help(settings, worker.url, settings.api_open_writes), file=info)
            await changes.start()
            for definition in [*definitions, SYNC_SEGMENT]:
                await publisher.send(definition)
            await publisher.flush()
            for definition in [*definitions, SYNC_SEGMENT]:
                await _wait_applied(settings, worker.url, definition)
            for definition in definitions:
                click.echo(f"segment {definition.id} ({definition.kind}): {definition.formula}")
            markers = 0

            async def sync(make: Any) -> None:
                """Send one marker per partition, wait until all joined."""
                nonlocal markers
                ids = [key for _, key in one_key_per_partition(
                    f"demo-clock-{markers}-", settings.partitions)]
                for contact_id in ids:
                    await publisher.send(make(contact_id, markers))
                await publisher.flush()
                await changes.wait_markers(set(ids), worker)
                markers += 1

            async def play(day: Day) -> None:
                nonlocal last_at
                if day.contacts:
                    for contact in day.contacts:
                        await publisher.send(contact)
                    await sync(lambda cid, k: ContactUpsert(
                        contact_id=cid, attributes={"demo_clock": k}, updated_at=day.start))
                for interaction in day.interactions:
                    await publisher.send(interaction)
                await sync(lambda cid, k: Interaction(
                    event_id=cid, contact_id=cid, type="email_sent", occurred_at=day.end,
                    properties={"demo_clock": k}))
                last_at = day.end
                output.lines([day.headline(), *changes.take(order)])
                output.sizes(changes.sizes, day.end)

            contact_ids: list[str] = []
            for day in replay_days(events):
                contact_ids.extend(c.contact_id for c in day.contacts)
                await play(day)
            output.lines([f"── replay done: {events} purchase-history lines, "
                          f"{len(contact_ids)} contacts"])
            if contact_ids and trickle != 0:
                assert last_at is not None
                for n, day in enumerate(trickle_days(contact_ids, last_at)):
                    if trickle is not None and n >= trickle:
                        break
                    await asyncio.sleep(pace)  # pacing for the eye, not a wait
                    await play(day)
            return 0
        finally:
            output.final(changes.sizes, last_at)
            await changes.stop()
            worker.stop()
            click.echo(f"stopped; topics {prefix}.* and {settings.data_dir} are kept", file=info)
