"""The two fixes behind the two-worker kill test: taken-over partitions are
seeked before they are resumed (app/recovery.py), and a batch waits for its
own changelog records (agents/buffered_tables.py)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

from agents.buffered_tables import BufferedTable, WriteBatch
from app.recovery import SeekFirstRecovery

STREAM, CHANGELOG = ("in", 0), ("x-changelog", 0)


class FakeConsumer:
    def __init__(self, calls: list[str], committed: dict | None = None) -> None:
        self.calls = calls
        self.paused = {STREAM, CHANGELOG}
        self._committed_offset = {STREAM: 42} if committed is None else committed

    def assignment(self) -> set:
        return {STREAM, CHANGELOG}

    async def perform_seek(self) -> None:
        # The bug: records fetched for a resumed partition during this await
        # were queued, then cleared by flow_control.resume() and never re-read.
        assert STREAM in self.paused, "seek must happen while the stream partition is paused"
        await asyncio.sleep(0)
        self.calls.append("seek")

    async def earliest_offsets(self, *tps: Any) -> dict:
        return {tp: 7 for tp in tps}

    async def seek(self, tp: Any, offset: int) -> None:
        assert tp in self.paused
        self.calls.append(f"seek {tp} {offset}")

    def resume_partitions(self, tps: set) -> None:
        self.paused -= tps
        self.calls.append(f"resume {sorted(tps)}")

    def resume_flow(self) -> None:
        self.calls.append("resume_flow")


class FakeFlowControl:
    def __init__(self, calls: list[str], active: bool) -> None:
        self.calls, self.active = calls, active

    def is_active(self) -> bool:
        return self.active

    def resume(self) -> None:  # clears every channel queue
        self.calls.append("flow_control.resume")
        self.active = True


def fake_recovery(calls: list[str], flow_active: bool, committed: dict | None = None) -> Any:
    async def nothing(*_: Any, **__: Any) -> None:
        return None

    async def wait(coro: Any, timeout: Any = None) -> None:
        await coro

    app = SimpleNamespace(
        consumer=FakeConsumer(calls, committed),
        consumer_generation_id=3,
        on_rebalance_complete=SimpleNamespace(send=nothing),
        flow_control=FakeFlowControl(calls, flow_active),
        conf=SimpleNamespace(broker_request_timeout=1.0),
        _fetcher=SimpleNamespace(maybe_start=nothing),
        assignor=SimpleNamespace(assigned_standbys=lambda: set()),
        on_rebalance_end=lambda: calls.append("rebalance_end"),
    )
    recovery = SimpleNamespace(
        app=app,
        log=logging.getLogger("test"),
        tables=SimpleNamespace(values=lambda: [], on_actives_ready=lambda: None,
                               on_standbys_ready=lambda: None),
        actives_for_table={}, standbys_for_table={},
        completed=asyncio.Event(),
        _set_recovery_ended=lambda: None,
        _wait=wait,
        _is_changelog_tp=lambda tp: tp[0].endswith("-changelog"),
    )
    recovery._seek_stream_partitions = lambda consumer: (
        SeekFirstRecovery._seek_stream_partitions(recovery, consumer))
    return recovery


async def test_stream_partitions_are_seeked_before_they_are_resumed() -> None:
    calls: list[str] = []
    recovery = fake_recovery(calls, flow_active=True)
    await SeekFirstRecovery.on_recovery_completed(recovery, 3)
    assert calls == ["seek", f"resume {[STREAM]}", "flow_control.resume", "resume_flow",
                     "rebalance_end"]
    assert recovery.completed.is_set()


async def test_never_committed_stream_partition_is_sought_to_its_earliest_offset() -> None:
    # aiokafka's seek_to_committed leaves it where the discarded fetches left it.
    calls: list[str] = []
    await SeekFirstRecovery.on_recovery_completed(
        fake_recovery(calls, flow_active=True, committed={}), 3)
    assert calls == ["seek", f"seek {STREAM} 7", f"resume {[STREAM]}", "flow_control.resume",
                     "resume_flow", "rebalance_end"]


async def test_new_generation_during_the_seek_resumes_nothing() -> None:
    calls: list[str] = []
    recovery = fake_recovery(calls, flow_active=True)

    async def seek_then_rebalance() -> None:
        calls.append("seek")
        recovery.app.consumer_generation_id = 4

    recovery.app.consumer.perform_seek = seek_then_rebalance
    await SeekFirstRecovery.on_recovery_completed(recovery, 3)
    assert calls == ["seek"]


class Event:
    """Stands in for a Faust event (WriteBatch keeps a weak reference)."""


class TrackingTable(dict):
    """A dict standing in for a Faust table that tracks changelog futures."""

    def __init__(self) -> None:
        super().__init__()
        self.futures: list[asyncio.Future] = []

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.futures.append(asyncio.get_running_loop().create_future())

    def take_changelog_futures(self) -> list[asyncio.Future]:
        futures, self.futures = self.futures, []
        return futures


async def test_apply_returns_the_changelog_futures_of_the_batch() -> None:
    batch = WriteBatch()
    a, b = TrackingTable(), TrackingTable()
    table_a, table_b = BufferedTable(a, batch), BufferedTable(b, batch)  # type: ignore[arg-type]
    event = Event()
    batch.event = event  # type: ignore[assignment]
    table_a["k1"] = b"1"
    table_b["k2"] = b"2"
    table_a["k3"] = b"3"
    futures = batch.apply()
    assert len(futures) == 3 and not any(f.done() for f in futures)
    assert a == {"k1": b"1", "k3": b"3"} and b == {"k2": b"2"}
    assert a.futures == [] and b.futures == [] and batch.writes == []
