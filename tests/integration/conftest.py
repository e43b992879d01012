"""Integration fixtures: one real Kafka broker per test session (started, or
reused, by the project's own deploy/kafka/kafka.sh), a fresh topic prefix per
test, and workers run as child processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from app.settings import Settings
from app.worker_process import WorkerProcess
from tests.integration.caught_up import end_offsets, wait_caught_up

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = ROOT / "deploy/kafka/kafka.sh"

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Start the local broker (or wait for KAFKA_BOOTSTRAP_SERVERS). It is left
    running for fast re-runs; `deploy/kafka/kafka.sh stop` (or .ci/run) stops it."""
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(KAFKA_SCRIPT), "start"], capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        pytest.fail(f"could not start Kafka:\n{result.stderr[-3000:]}")
    bootstrap = result.stdout.strip().splitlines()[-1]
    print(f"\nKafka at {bootstrap} (ready after {time.monotonic() - started:.1f} s)")
    return bootstrap


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings with a topic prefix (and so app id) no other test shares."""
    name = request.node.name.replace("[", "-").replace("]", "")[:40]
    return Settings(
        bootstrap_servers=kafka_bootstrap,
        topic_prefix=f"t-{uuid.uuid4().hex[:8]}-{name}",
        partitions=2,
        data_dir=tmp_path / "worker-data",
        web_port=free_port(),
        log_level=os.environ.get("SEGMENTFLOW_TEST_LOG_LEVEL", "info"),
    )


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[Callable[[Settings], WorkerProcess]]:
    workers: list[WorkerProcess] = []

    def make(settings: Settings) -> WorkerProcess:
        worker = WorkerProcess(settings, tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.stop()


@pytest.fixture
async def worker(
    settings: Settings, worker_factory: Callable[[Settings], WorkerProcess]
) -> AsyncIterator[WorkerProcess]:
    """A started, ready worker on this test's topics."""
    process = worker_factory(settings)
    started = time.monotonic()
    process.start()
    await process.wait_ready()
    print(f"worker ready after {time.monotonic() - started:.1f} s")
    yield process


class TopicReader:
    """Collects every record of a topic (all partitions, from the start) in
    the background, so a test can wait for what it expects."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.records: list[tuple[bytes | None, bytes | None]] = []
        self.timestamps: list[int] = []  # each record's Kafka timestamp (ms)
        self._settings, self._topic = settings, topic
        self._next: dict[int, int] = {}  # partition -> next offset to read
        bootstrap = settings.bootstrap_servers
        self._consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
            enable_auto_commit=False, group_id=None, metadata_max_age_ms=1000,
        )
        self._task: asyncio.Task[None] | None = None
        self._read = asyncio.Condition()  # notified whenever records arrive

    async def start(self) -> TopicReader:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            for tp, records in batches.items():
                self.records.extend((r.key, r.value) for r in records)
                self.timestamps.extend(r.timestamp for r in records)
                if records:
                    self._next[tp.partition] = records[-1].offset + 1
            if batches:
                async with self._read:
                    self._read.notify_all()

    async def until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Return once ``done()`` holds, re-checked whenever records arrive."""
        async with self._read:
            try:
                await asyncio.wait_for(self._read.wait_for(done), timeout)
            except TimeoutError:
                raise AssertionError(f"{what}: not within {timeout} s") from None

    def values(self) -> list[Any]:
        return [orjson.loads(v) for _, v in self.records if v is not None]

    async def wait_for(
        self, predicate: Callable[[list[Any]], bool], timeout: float = 30.0
    ) -> list[Any]:
        await self.until(lambda: predicate(self.values()), timeout,
                         f"{self._topic}: expected records")
        return self.values()

    async def settle(self, timeout: float = 60.0) -> list[Any]:
        """Every record produced by the worker for inputs sent before this
        call (the worker is caught up, tests/integration/caught_up.py), read."""
        deadline = time.monotonic() + timeout
        await wait_caught_up(self._settings, timeout)
        ends = await end_offsets(self._settings, [self._topic])
        await self.until(
            lambda: all(self._next.get(tp.partition, 0) >= end for tp, end in ends.items()),
            max(0.0, deadline - time.monotonic()), f"reader of {self._topic} at {ends}")
        return self.values()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()


@pytest.fixture
async def reader(settings: Settings) -> AsyncIterator[Callable[[str], Awaitable[TopicReader]]]:
    readers: list[TopicReader] = []

    async def open_reader(topic: str) -> TopicReader:
        r = await TopicReader(settings, topic).start()
        readers.append(r)
        return r

    yield open_reader
    for r in readers:
        await r.stop()
