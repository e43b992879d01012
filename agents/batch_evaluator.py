"""Reads of the batch evaluator's state for the API and metrics
(app/batch_evaluator.py wires it)."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice
from typing import Any

from aiokafka import TopicPartition

from agents.state_reads import EvaluatorReads
from engine import Catalog
from engine.timeutil import from_us, to_us
from runtime.archive import Archive
from runtime.keys import Keyspace, contact_key
from runtime.loop import BatchEvaluator
from runtime.processor import PartitionProcessor
from runtime.views import Accounts, Backfill

__all__ = ["BatchEvaluatorHandle"]


class BatchEvaluatorHandle(EvaluatorReads):
    """What the web views may read of the batch evaluator (never write):
    each held partition through a read-only transaction on its store."""

    def __init__(self, loop: BatchEvaluator, *, partitions: int, clock: str,
                 changelog: str) -> None:
        self._loop = loop
        self._partitions, self._clock, self._changelog = partitions, clock, changelog

    def _processor(self, partition: int) -> PartitionProcessor:
        return self._loop.processors[partition]

    def _read(self, partition: int) -> Any:
        return self._processor(partition).store.begin()  # never written: nothing to close

    def held_partitions(self) -> set[int]:
        return set(self._loop.processors)

    def segment_status(self, segment_id: str) -> dict[int, dict[str, Any]]:
        status: dict[int, dict[str, Any]] = {}
        for partition in self.held_partitions():
            processor = self._processor(partition)
            definition = processor.catalog.get(segment_id)
            job = processor.backfill_progress(segment_id)
            status[partition] = {
                "version": definition.version if definition is not None else 0,
                "backfill_version": job.version if job else None,
                "contacts_scanned": job.scanned if job else 0,
                "backfill_complete": job.complete if job else False,
                "quarantined": processor.quarantined.get(segment_id),
                "refused": processor.refused.get(segment_id),
            }
        return status

    def segment_versions(self, segment_id: str) -> dict[int, int]:
        return {p: s["version"] for p, s in self.segment_status(segment_id).items()}

    @property
    def contacts_changelog(self) -> str:
        return self._changelog

    @property
    def partitions(self) -> int:
        return self._partitions

    def _catalog(self, partition: int) -> Catalog:
        return self._processor(partition).catalog

    def _refusals(self, partition: int) -> dict[str, dict[str, Any]]:
        return dict(self._processor(partition).refused)

    def _contact_raw(self, partition: int, contact_id: str) -> bytes | None:
        raw: bytes | None = self._read(partition).get(Keyspace.CONTACTS, contact_key(contact_id))
        return raw

    def _scan_contacts(self, partition: int, after: str | None,
                       limit: int) -> list[tuple[str, bytes]]:
        scan = self._read(partition).scan_range(
            Keyspace.CONTACTS, after=after.encode() if after is not None else None)
        return [(key.decode(), raw) for key, raw in islice(scan, limit)]

    def _accounts(self, partition: int) -> Accounts:
        return Accounts(self._read(partition), {})

    def _now(self, partition: int) -> datetime:
        clock = self._processor(partition).event_clock
        if self._clock == "event" and clock is not None:
            return from_us(clock)
        return datetime.now(UTC)

    @property
    def clock_mode(self) -> str:
        return self._clock

    def _event_clock(self, partition: int) -> datetime | None:
        clock = self._processor(partition).event_clock
        return from_us(clock) if self._clock == "event" and clock is not None else None

    def _offsets(self, partition: int) -> tuple[int | None, int | None]:
        return (self._processor(partition).applied_offset,
                self._loop.stats.committed.get(partition))

    def _settling(self, partition: int) -> tuple[int | None, int | None, int | None]:
        processor = self._processor(partition)
        store = processor.store
        return len(processor.backfills), store.staged_batches, store.settled_batches

    def _archived(self, partition: int, first: str, last: str,
                  now: datetime) -> dict[str, list[Any]]:
        archive = Archive(self._read(partition), self._retention_us(), prune=False)
        return archive.events_of(first, last, to_us(now))  # type: ignore[return-value]

    def _fields(self, partition: int) -> dict[str, Any]:
        fields = self._processor(partition).fields
        return {"fields": fields.fields, "truncated": fields.truncated}

    def _retention_us(self) -> int:
        return self._loop.settings.processor.retention_us

    def _backfill(self, partition: int, segment_id: str) -> Backfill | None:
        return self._processor(partition).backfill_progress(segment_id)

    def _due(self) -> tuple[int, list[int]]:
        entries, earliest = 0, []
        for partition in self.held_partitions():
            first = None
            for key, _ in self._read(partition).scan_range(Keyspace.DUE):
                entries += 1
                if first is None:
                    first = int.from_bytes(key[:8], "big") - (1 << 63)
            if first is not None:
                earliest.append(first)
        return entries, earliest

    def _standby_lag(self) -> dict[int, int]:
        return self._loop.standbys.lag()

    def _consumer_lag(self) -> dict[int, int]:
        consumer = self._loop.consumer
        if consumer is None:
            return {}
        lag: dict[int, int] = {}
        for partition in self.held_partitions():
            tp = TopicPartition(self._loop.topics.input, partition)
            high = consumer.highwater(tp)
            if high is not None:
                lag[partition] = max(0, high - self._loop.stats.committed.get(partition, 0))
        return lag
