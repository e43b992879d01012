""""Caught up": every input produced before a given moment has been applied
and its changes are on the output topics.

Read from the consumer groups' committed offsets on the broker, stage by
stage, so it holds for any number of workers (and says "behind" when none
runs):

1. **ingest** (group ``<prefix>-ingest``; the Faust app's group, the prefix,
   with ``SEGMENTFLOW_INGEST=faust``) commits an upstream input only once
   it is forwarded to the evaluator's log (or dead-lettered) and the broker
   acknowledged it;
2. **evaluator** (group ``<prefix>-evaluator``) commits its log only after the batch's
   changes, snapshot records, dead letters and state changelog were
   acknowledged (runtime/loop.py).

So: take the upstream topics' end offsets at the moment that matters (the
start of ``segmentflow status --wait-caught-up``, an API request); ingest's
committed offsets reaching them means every earlier input is on the
evaluator's log; then take the log's end offsets, and the evaluator's
committed offsets reaching those means every such input was applied and its
changes acknowledged on the output topics. Committed offsets live on the
broker and nothing notifies a change, so this one condition is polled.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from app.settings import Settings

__all__ = ["Behind", "CaughtUp", "NotCaughtUp", "Stage", "stages", "upstream_topics"]

POLL = 0.05  # seconds between probes of the committed offsets


@dataclass(frozen=True, slots=True)
class Stage:
    name: str  # "ingest" | "evaluator"
    group: str  # the consumer group whose committed offsets count
    topics: tuple[str, ...]  # what it consumes


def upstream_topics(settings: Settings) -> tuple[str, ...]:
    names = settings.topics
    return (names.contacts, names.accounts, names.interactions, names.segment_definitions,
            names.static_edits)


def stages(settings: Settings) -> tuple[Stage, Stage]:
    prefix = settings.topic_prefix
    return (
        Stage("ingest", f"{prefix}-ingest" if settings.ingest == "batch" else prefix,
              upstream_topics(settings)),
        Stage("evaluator", f"{prefix}-evaluator", (settings.topics.evaluator_input,)),
    )


@dataclass(frozen=True, slots=True)
class Behind:
    """A stage's partitions whose committed offset is below the target."""

    stage: Stage
    partitions: dict[TopicPartition, tuple[int | None, int]]  # (committed, end)

    @property
    def messages(self) -> int:
        return sum(end - (committed or 0) for committed, end in self.partitions.values())

    def describe(self) -> str:
        parts = ", ".join(
            f"{tp.topic}[{tp.partition}] committed {'none' if c is None else c} of {end}"
            for tp, (c, end) in sorted(self.partitions.items())[:6])
        more = len(self.partitions) - 6
        return (f"{self.stage.name} (group {self.stage.group}) is {self.messages} input(s) "
                f"behind: {parts}{f', and {more} more partitions' if more > 0 else ''}")


class NotCaughtUp(TimeoutError):
    def __init__(self, timeout: float, behind: Behind) -> None:
        super().__init__(f"not caught up after {timeout:g} s: {behind.describe()}")
        self.behind = behind


class CaughtUp:
    """One admin client and one group-less consumer (end offsets and
    metadata); ``async with``, or ``start``/``close`` for a long-lived one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stages = stages(settings)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                          group_id=None, enable_auto_commit=False)
        self._started = False

    async def start(self) -> None:
        if self._started:
            return
        try:
            await self._admin.start()
            await self._consumer.start()
        except BaseException:
            await self.close()
            raise
        self._started = True

    async def close(self) -> None:
        self._started = False
        await self._consumer.stop()
        await self._admin.close()

    async def __aenter__(self) -> CaughtUp:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def end_offsets(self, topics: tuple[str, ...]) -> dict[TopicPartition, int]:
        """The next offset of every partition of ``topics`` (those that exist)."""
        # Fresh metadata of every topic (partitions_for_topic only knows
        # the topics a consumer tracks); a topic not created yet has none.
        cluster = await self._consumer._client.fetch_all_metadata()
        partitions = [TopicPartition(topic, p) for topic in topics
                      for p in sorted(cluster.partitions_for_topic(topic) or ())]
        return await self._consumer.end_offsets(partitions) if partitions else {}

    async def committed(self, group: str) -> dict[TopicPartition, int]:
        found = await self._admin.list_consumer_group_offsets(group)
        return {tp: meta.offset for tp, meta in found.items() if meta.offset >= 0}

    async def behind(self, stage: Stage, targets: dict[TopicPartition, int]) -> Behind:
        committed = await self.committed(stage.group)
        return Behind(stage, {tp: (committed.get(tp), end) for tp, end in targets.items()
                              if end > 0 and committed.get(tp, 0) < end})

    async def snapshot(self) -> dict[str, Any]:
        """Caught up now? Every input produced before this call has passed
        ingest, and everything on the evaluator's log has been applied and
        acknowledged. Per stage: its group and how many inputs it is behind."""
        upstream = await self.end_offsets(self.stages[0].topics)
        log = await self.end_offsets(self.stages[1].topics)
        report: dict[str, Any] = {}
        caught_up = True
        for stage, targets in zip(self.stages, (upstream, log), strict=True):
            behind = await self.behind(stage, targets)
            report[stage.name] = {"group": stage.group, "behind": behind.messages}
            caught_up = caught_up and not behind.partitions
        return {"caught_up": caught_up, **report}

    async def wait(self, timeout: float,
                   upstream: dict[TopicPartition, int] | None = None) -> None:
        """Return once every input produced before this call (or below the
        ``upstream`` end offsets given) is applied and its changes are on the
        output topics; ``NotCaughtUp`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        ingest, evaluator = self.stages
        targets = upstream if upstream is not None else await self.end_offsets(ingest.topics)
        await self._wait_stage(ingest, targets, deadline, timeout)
        # Everything ingest forwarded so far is on the log now.
        targets = await self.end_offsets(evaluator.topics)
        await self._wait_stage(evaluator, targets, deadline, timeout)

    async def wait_ingested(self, timeout: float) -> None:
        """Only the first stage: every input produced before this call is on
        the evaluator's log (what a clock advance is ordered after)."""
        ingest = self.stages[0]
        await self._wait_stage(ingest, await self.end_offsets(ingest.topics),
                               time.monotonic() + timeout, timeout)

    async def _wait_stage(self, stage: Stage, targets: dict[TopicPartition, int],
                          deadline: float, timeout: float) -> None:
        while (behind := await self.behind(stage, targets)).partitions:
            if time.monotonic() >= deadline:
                raise NotCaughtUp(timeout, behind)
            await asyncio.sleep(POLL)
