"""A broker-free driver for the runtime (Kafka Streams' TopologyTestDriver).

It keeps, in memory, what Kafka would: one input log per partition, the
output records, one changelog per partition and committed input offsets;
and runs one :class:`PartitionProcessor` per partition over real stores
(RocksDB or memory) with the same commit protocol as the worker: a batch's
changes and changelog records are "sent" when it is staged, and it is
committed (local write batch + checkpoint, then input offset) when the
driver acknowledges it — ``depth`` batches may be in flight.

``crash()`` loses what a kill -9 loses (uncommitted batches; their changes
may have reached the output topic: they stay there, as duplicates that the
sequence filter drops); ``restart(keep_local=False)`` also loses the local
stores, which are then restored from the changelog.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from engine import Limits
from models.changes import MembershipChange
from runtime.catalogs import CatalogCache
from runtime.memory import MemoryStore
from runtime.partitioning import partition_for
from runtime.processor import Batch, PartitionProcessor, ProcessorConfig, merged_changelog
from runtime.restore import apply_changelog
from runtime.staged import StagedStore
from runtime.store import Store

__all__ = ["Driver", "fold_changes"]

_BROADCAST = frozenset(("segment", "segment_delete", "account", "clock"))


def fold_changes(changes: list[MembershipChange]) -> dict[str, set[str]]:
    """Segment -> members, from a change stream with duplicates: the
    documented sequence filter (drop a change whose sequence is not above
    the last one seen for its segment and contact; an erasure resets the
    pair's mark, since an erased contact's sequences start again at 1)."""
    last: dict[tuple[str, str], int] = {}
    member: dict[tuple[str, str], bool] = {}
    for change in changes:
        key = (change.segment_id, change.contact_id)
        if change.sequence <= last.get(key, -1):
            continue
        last[key] = change.sequence
        member[key] = change.change == "joined"
        if change.cause.kind == "erasure":
            del last[key]
    folded: dict[str, set[str]] = {}
    for (segment_id, contact_id), is_member in member.items():
        if is_member:
            folded.setdefault(segment_id, set()).add(contact_id)
    return folded


@dataclass
class _Partition:
    log: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    changelog: list[tuple[int, bytes, bytes | None]] = field(default_factory=list)
    committed: int = 0  # next input offset to read after a restart
    position: int = 0
    in_flight: deque[tuple[Batch, int]] = field(default_factory=deque)  # (batch, next offset)


class Driver:
    def __init__(
        self,
        partitions: int = 4,
        *,
        config: ProcessorConfig | None = None,
        store: Literal["memory", "rocksdb"] = "memory",
        batch_size: int = 50,
        depth: int = 2,
        wall: Callable[[], datetime] | None = None,
    ) -> None:
        self.partitions = partitions
        self.config = config or ProcessorConfig(partitions=partitions)
        self.batch_size, self.depth = batch_size, depth
        self.wall = wall or (lambda: datetime.now(UTC))
        self.kind = store
        self.outputs: list[MembershipChange] = []
        #: parallel to ``outputs``: (partition, input log offset) of the input
        #: that caused each change, None for timers and backfill chunks
        self.sources: list[tuple[int, int] | None] = []
        self.dead_letters: list[tuple[int, int, str]] = []  # (partition, offset, reason)
        self._parts = [_Partition() for _ in range(partitions)]
        self._dir = Path(tempfile.mkdtemp(prefix="segmentflow-driver-"))
        self._stores: Store | MemoryStore = MemoryStore()
        self.catalogs = CatalogCache(Limits(history_retention_us=self.config.retention_us))
        self.processors: dict[int, PartitionProcessor] = {}
        self._open_all()

    # -- inputs -------------------------------------------------------------------

    def send(self, kind: str, body: dict[str, Any]) -> None:
        """Append an input where the ingest agent would: a contact's inputs
        to its partition, commands to every partition."""
        if kind in _BROADCAST:
            for part in self._parts:
                part.log.append((kind, body))
        else:
            self._parts[partition_for(body["contact_id"], self.partitions)].log.append(
                (kind, body))

    # -- running -------------------------------------------------------------------

    def run(self, *, idle_rounds: int = 0, settle: bool = True) -> None:
        """Process every input sent so far, then ``idle_rounds`` empty
        batches per partition (timers, backfills); acknowledge all of them
        (``settle``) or leave up to ``depth`` batches in flight."""
        for number, part in enumerate(self._parts):
            processor = self.processors[number]
            while part.position < len(part.log):
                end = min(part.position + self.batch_size, len(part.log))
                self._process(number, part, processor, part.log[part.position:end], end)
            for _ in range(idle_rounds):
                self._process(number, part, processor, [], part.position)
            if settle:
                self._ack(number, part, keep=0)

    def run_until_idle(self, max_rounds: int = 10_000) -> None:
        """``run`` until no backfill is left running."""
        self.run()
        rounds = 0
        while any(p.backfills for p in self.processors.values()):
            rounds += 1
            if rounds > max_rounds:
                raise RuntimeError("backfills did not finish")
            self.run(idle_rounds=1)

    def _process(self, number: int, part: _Partition, processor: PartitionProcessor,
                 inputs: list[tuple[str, dict[str, Any]]], end: int) -> None:
        applied = processor.applied_offset
        start = end - len(inputs)
        if applied is not None and inputs and end - 1 <= applied:
            part.position = end  # already in the restored state: skip
            return
        if applied is not None and inputs and start <= applied:
            inputs = inputs[applied + 1 - start:]
            start = applied + 1
        batch = processor.process(inputs, end - 1 if inputs else None)
        for refusal in batch.refused:
            if refusal.report:
                self.dead_letters.append((number, start + refusal.index, refusal.reason))
        self.outputs.extend(batch.changes)  # sent now; acknowledged at commit
        for index, begin, end_ in batch.change_sources():
            source = None if index is None else (number, start + index)
            self.sources.extend([source] * (end_ - begin))
        part.position = end
        part.in_flight.append((batch, end))
        self._ack(number, part, keep=self.depth)

    def _ack(self, number: int, part: _Partition, keep: int) -> None:
        """Acknowledge the oldest in-flight batches until ``keep`` remain,
        together, as the loop's acker does: their changelog records merged
        (one per key), one store commit."""
        if len(part.in_flight) <= keep:
            return
        settled = [part.in_flight.popleft() for _ in range(len(part.in_flight) - keep)]
        last = None
        for key, value in merged_changelog(batch.changelog for batch, _ in settled):
            last = len(part.changelog)
            part.changelog.append((last, key, value))
        self.processors[number].store.commit(settled[-1][0].seq, last)
        part.committed = settled[-1][1]

    # -- faults --------------------------------------------------------------------

    def crash(self) -> None:
        """kill -9: in-flight batches are lost (their changes were sent)."""
        for part in self._parts:
            part.in_flight.clear()
        self._close_all()
        self._open_all()

    def restart(self, *, keep_local: bool = True) -> None:
        """A clean stop, then start; without the local stores if told."""
        for number, part in enumerate(self._parts):
            self._ack(number, part, keep=0)
        self._close_all()
        if not keep_local:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir.mkdir(parents=True)
            self._stores = MemoryStore()
        self._open_all()

    def close(self) -> None:
        self._close_all()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _open_all(self) -> None:
        if self.kind == "rocksdb":
            self._stores = Store(self._dir, cache_bytes=1 << 20, write_buffer_bytes=1 << 20)
        # a new process compiles again
        self.catalogs = CatalogCache(Limits(history_retention_us=self.config.retention_us))
        for number, part in enumerate(self._parts):
            base = self._stores.assign(number)
            apply_changelog(base, part.changelog)
            self.processors[number] = PartitionProcessor(
                StagedStore(base), self.config, self.catalogs, self.wall)
            part.position = part.committed

    def _close_all(self) -> None:
        self._stores.close()
        self.processors.clear()

    # -- reading --------------------------------------------------------------------

    def members(self) -> dict[str, set[str]]:
        """Segment -> members as a consumer of the change topic sees them."""
        return fold_changes(self.outputs)
