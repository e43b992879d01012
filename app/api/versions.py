"""``GET /segments/{id}/versions``: a segment's version history — each
version's formula, status, name… and ``updated_at``, what changed from the
version before, when it reached the topic, which one is in force and which
one the evaluators refused.

Where it comes from: **the segment-definitions topic itself**, the source
of truth every write goes to (the API's, ``segmentflow apply``'s, a
producer's straight to the topic). No second store: each worker reads the
topic with a plain aiokafka consumer (no group, nothing committed), started
by the first history asked for, and keeps an index in memory (segment id ->
its versions, the newest ``MAX_VERSIONS_KEPT``); each request first reads
what was written since, up to the end offsets it sees, so an accepted write
is in the next answer. A restarted worker reads the topic again.

The cost of that choice: the history is as long as the topic keeps records.
The topic is not compacted (every version is a record); with the broker's
default ``retention.ms`` (7 days) older versions go. Set a longer retention
on ``<prefix>.segment-definitions`` (``retention.ms=-1`` keeps them all: it
is a small, rarely written topic) for a complete history; the answer says
``history_complete: false`` when the topic's start was deleted. Refused
versions are in the topic too, shown with the reason while the evaluators
still record it (agents/refusals.py keeps only the newest refusal).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from faust.web import Request, Response, View

from app.api.context import ApiContext
from app.api.errors import ApiError, json_response
from app.api.guard import authorize, check_id, int_param
from app.api.limits import clip

__all__ = ["MAX_VERSIONS_KEPT", "DefinitionHistory", "diff_versions", "register_versions"]

log = logging.getLogger(__name__)

MAX_VERSIONS_KEPT = 500  # per segment, newest first
# The fields a version is compared on ("what changed").
COMPARED = ("name", "description", "kind", "status", "formula", "timezone", "include",
            "exclude")
_READ_TIMEOUT = 10.0  # seconds a request waits for the topic


def diff_versions(before: dict[str, Any] | None, after: dict[str, Any]) -> list[dict[str, Any]]:
    """What changed from ``before`` to ``after`` (history entries): one
    ``{"field", "from", "to"}`` per field of ``COMPARED`` that differs;
    a creation and a deletion are one change of ``op``."""
    if after["op"] == "delete":
        return [{"field": "op", "from": None, "to": "delete"}]
    if before is None or before["op"] == "delete":
        return [{"field": "op", "from": None if before is None else "delete", "to": "create"}]
    return [{"field": name, "from": before.get(name), "to": after.get(name)}
            for name in COMPARED if before.get(name) != after.get(name)]


def _entry(value: dict[str, Any], timestamp_ms: int, partition: int, offset: int
           ) -> dict[str, Any]:
    at = datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat() if timestamp_ms else None
    if value.get("op") == "delete":
        return {"op": "delete", "version": None, "written_at": at, "updated_at": at,
                "partition": partition, "offset": offset}
    entry: dict[str, Any] = {"op": "definition", "version": value.get("version", 1),
                             "written_at": at, "updated_at": value.get("updated_at"),
                             "created_at": value.get("created_at"),
                             "partition": partition, "offset": offset}
    for name in COMPARED:
        entry[name] = value.get(name)
    entry["include"] = entry["include"] or []
    entry["exclude"] = entry["exclude"] or []
    entry["kind"] = entry["kind"] or "dynamic"
    entry["status"] = entry["status"] or "draft"
    entry["timezone"] = entry["timezone"] or "UTC"
    entry["description"] = entry["description"] or ""
    return entry


class DefinitionHistory:
    """The index of every segment's versions, read from the topic."""

    def __init__(self, bootstrap_servers: str, topic: str, partitions: int) -> None:
        self._bootstrap, self._topic, self._partitions = bootstrap_servers, topic, partitions
        self._consumer: Any = None
        self._tps: list[Any] = []
        self._lock = asyncio.Lock()
        self._closed = False
        self._versions: dict[str, list[dict[str, Any]]] = {}
        self._trimmed: set[str] = set()
        self.complete = True  # no partition's start was deleted (by retention)

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            consumer, self._consumer = self._consumer, None
            if consumer is not None:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def _start(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        try:
            await consumer.start()
            known = consumer.partitions_for_topic(self._topic)
            if not known:
                with contextlib.suppress(Exception):
                    await consumer.force_metadata_update()
                known = consumer.partitions_for_topic(self._topic)
            partitions = sorted(known) if known else range(self._partitions)
            tps = [TopicPartition(self._topic, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            starts = await consumer.beginning_offsets(tps)
            self.complete = all(offset == 0 for offset in starts.values())
        except BaseException:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        self._consumer, self._tps = consumer, tps

    async def versions(self, segment_id: str) -> list[dict[str, Any]]:
        """The segment's versions, oldest first, as of the topic's end now."""
        async with self._lock:
            if self._closed:
                raise ApiError(503, "unavailable", "the worker is stopping")
            if self._consumer is None:
                await self._start()
            await asyncio.wait_for(self._catch_up(), _READ_TIMEOUT)
            return [dict(entry) for entry in self._versions.get(segment_id, ())]

    def trimmed(self, segment_id: str) -> bool:
        """Older versions of the segment were dropped from the index."""
        return segment_id in self._trimmed

    async def _catch_up(self) -> None:
        consumer = self._consumer
        ends = await consumer.end_offsets(self._tps)
        # The retention may delete the topic's start at any time.
        starts = await consumer.beginning_offsets(self._tps)
        self.complete = self.complete and all(offset == 0 for offset in starts.values())
        while True:
            behind = [tp for tp in self._tps if await consumer.position(tp) < ends[tp]]
            if not behind:
                return
            batches = await consumer.getmany(*behind, timeout_ms=500, max_records=2000)
            for tp, records in batches.items():
                for record in records:
                    self._add(record, tp.partition)

    def _add(self, record: Any, partition: int) -> None:
        if record.value is None:
            return
        try:
            value = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            return  # ingest dead-letters it: never a version
        if not isinstance(value, dict):
            return
        segment_id = value.get("segment_id") if value.get("op") == "delete" else value.get("id")
        if not isinstance(segment_id, str):
            return
        entry = _entry(value, record.timestamp, partition, record.offset)
        kept = self._versions.setdefault(segment_id, [])
        entry["changes"] = diff_versions(kept[-1] if kept else None, entry)
        kept.append(entry)
        if len(kept) > MAX_VERSIONS_KEPT:
            del kept[:len(kept) - MAX_VERSIONS_KEPT]
            self._trimmed.add(segment_id)


def register_versions(ctx: ApiContext) -> DefinitionHistory:
    settings = ctx.settings
    history = DefinitionHistory(settings.bootstrap_servers,
                                settings.topics.segment_definitions, settings.partitions)

    async def close_history(_: Any) -> None:
        await history.close()

    ctx.app.web.web_app.on_shutdown.append(close_history)

    @ctx.app.page("/segments/{segment_id}/versions", name="segment-versions")
    class Versions(View):
        async def get(self, request: Request, segment_id: str) -> Response:
            authorize(request, settings, write=False)
            check_id(segment_id)
            limit = int_param(request, "limit", 50, 1, MAX_VERSIONS_KEPT)
            try:
                found = await history.versions(segment_id)
            except TimeoutError:
                raise ApiError(503, "timeout", "reading the segment-definitions topic took "
                               "too long; retry", headers={"Retry-After": "2"}) from None
            except ApiError:
                raise
            except Exception as exc:
                raise ApiError(503, "unavailable", "cannot read the segment-definitions "
                               f"topic: {clip(str(exc), 200)}",
                               headers={"Retry-After": "2"}) from exc
            current = ctx.writer.current(segment_id)
            applied = ctx.reads.definitions().get(segment_id)
            refused = ctx.writer.refusal(segment_id)
            if not found and current is None and refused is None:
                raise ApiError(404, "segment_not_found", f'no segment "{clip(segment_id)}"')
            for entry in found:
                entry["in_force"] = False
                entry["refused_reason"] = None
            # The newest record of the version applied is the one in force
            # (unless deleted since); the newest refused version says why.
            last_delete = max((i for i, e in enumerate(found) if e["op"] == "delete"), default=-1)
            for i in range(len(found) - 1, last_delete, -1):
                if applied is not None and found[i]["version"] == applied.version:
                    found[i]["in_force"] = True
                    break
            if refused is not None:
                for entry in reversed(found):
                    if entry["version"] == refused["version"]:
                        entry["refused_reason"] = refused["reason"]
                        break
            newest_first = list(reversed(found))
            return json_response({
                "segment_id": segment_id,
                "versions": newest_first[:limit],
                "total": len(found),
                "version_in_force": applied.version if applied is not None else None,
                "history_complete": history.complete and not history.trimmed(segment_id),
                "source": settings.topics.segment_definitions,
            })

    return history
