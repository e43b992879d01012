""""Caught up": the condition integration tests wait on instead of a quiet
period.

Every input produced before the call has been applied and its outputs are
on their topics when the worker's consumer group (the Faust app id, i.e. the
topic prefix) has committed past it, stage by stage: ingest commits an
upstream input only after forwarding (or dead-lettering) it and the
evaluator commits its log only after the batch's outputs were acknowledged.
So: wait until the group's committed offsets reach the upstream topics' end
offsets taken now, then the evaluator log's end offsets taken after that,
and finally until a reader has read its own topic to the end offsets taken
after that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from app.settings import Settings

__all__ = ["end_offsets", "wait_caught_up"]

# Seconds between offset probes: committed offsets live on the broker and
# nothing notifies a change, so this is the one condition polled.
_POLL = 0.05


def _partitions(settings: Settings, topics: Iterable[str]) -> list[TopicPartition]:
    return [TopicPartition(t, p) for t in topics for p in range(settings.partitions)]


async def end_offsets(settings: Settings, topics: Iterable[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        return await consumer.end_offsets(_partitions(settings, topics))
    finally:
        await consumer.stop()


async def wait_caught_up(settings: Settings, timeout: float = 60.0) -> None:
    """Return once the worker group has committed past every input produced
    before this call (see the module docstring); raise after ``timeout``."""
    names = settings.topics
    # ingest is the Faust app's group (the prefix); the evaluator's log is
    # committed by the batch evaluator's own group when that one runs.
    evaluator_group = (f"{settings.topic_prefix}-evaluator" if settings.evaluator == "batch"
                       else settings.topic_prefix)
    ingest_group = (f"{settings.topic_prefix}-ingest" if settings.ingest == "batch"
                    else settings.topic_prefix)
    stages = (
        ([names.contacts, names.accounts, names.interactions, names.segment_definitions,
          names.static_edits], ingest_group),
        ([names.evaluator_input], evaluator_group),
    )
    deadline = time.monotonic() + timeout
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        for stage, group in stages:
            targets = {tp: end for tp, end in (await end_offsets(settings, stage)).items()
                       if end > 0}
            while True:
                committed = await admin.list_consumer_group_offsets(group)
                behind = {tp: (committed[tp].offset if tp in committed else None, end)
                          for tp, end in targets.items()
                          if tp not in committed or committed[tp].offset < end}
                if not behind:
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"not caught up after {timeout} s: "
                                         f"(committed, end) {behind}")
                await asyncio.sleep(_POLL)
    finally:
        await admin.close()
