"""A partition store seen through the writes of batches still in flight.

Pipelining: batch N+1 is evaluated while batch N's outputs and changelog
records are on their way to the broker. Batch N's writes may reach RocksDB
only once those are acknowledged (state is never durable ahead of the
changes it implies), yet batch N+1 must read them. So a prepared batch is
*staged*: its writes sit in memory over the store, tagged with the batch's
number, until :meth:`StagedStore.commit` writes them (and the changelog
checkpoint) in one RocksDB write batch and drops the entries no later batch
has overwritten.

Transactions begin on this object (it is a :class:`StorePartition`); they
never flush themselves here: the commit protocol stages and commits.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator, Sequence

from runtime.transaction import PartitionTransaction, merge_overlay
from runtime.types import ChangelogRecord, StorePartition, Updates

__all__ = ["StagedStore"]


class StagedStore:
    """``base`` overlaid by staged (prepared, unacknowledged) batches."""

    def __init__(self, base: StorePartition) -> None:
        self.base = base
        self._staged: dict[bytes, tuple[int, bytes | None]] = {}
        self._sorted: list[bytes] = []  # keys of _staged, byte order
        self._batches: dict[int, Sequence[ChangelogRecord]] = {}
        self._next = 0

    # -- StorePartition ------------------------------------------------------

    @property
    def partition(self) -> int:
        return self.base.partition

    @property
    def closed(self) -> bool:
        return self.base.closed

    def get(self, key: bytes) -> bytes | None:
        staged = self._staged.get(key)
        if staged is not None:
            return staged[1]
        return self.base.get(key)

    def iter_range(self, lower: bytes, upper: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        begin = bisect_left(self._sorted, lower)
        end = len(self._sorted) if upper is None else bisect_left(self._sorted, upper)
        overlay = [(k, self._staged[k][1]) for k in self._sorted[begin:end]]
        return merge_overlay(self.base.iter_range(lower, upper), overlay)

    def write(self, updates: Updates, checkpoint: int | None) -> None:
        raise TypeError("a staged store is written by commit(), not by a transaction's flush")

    def checkpoint(self) -> int | None:
        return self.base.checkpoint()

    def begin(self) -> PartitionTransaction:
        return PartitionTransaction(self)

    def close(self) -> None:
        self._staged.clear()
        self._sorted.clear()
        self._batches.clear()
        self.base.close()

    # -- the commit protocol ------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Batches staged and not yet committed."""
        return len(self._batches)

    @property
    def staged_batches(self) -> int:
        """Batches staged since this store was opened (the next number)."""
        return self._next

    @property
    def settled_batches(self) -> int:
        """Every batch numbered below this is committed (they commit in order)."""
        return min(self._batches) if self._batches else self._next

    def stage(self, records: Sequence[ChangelogRecord]) -> int:
        """Stage a prepared transaction's writes; returns the batch number."""
        batch = self._next
        self._next += 1
        self._batches[batch] = records
        for key, value in records:
            if key not in self._staged:
                insort(self._sorted, key)
            self._staged[key] = (batch, value)
        return batch

    def commit(self, batch: int, changelog_offset: int | None) -> None:
        """Write the staged batches up to and including ``batch`` (the oldest
        ones: they commit in order) to the store with the changelog
        checkpoint, in one write batch. Several at once when the acker
        settles them together (one changelog send, runtime/loop.py)."""
        if batch not in self._batches:
            raise ValueError(f"batch {batch} is not staged")
        merged: dict[bytes, bytes | None] = {}
        while self._batches:
            oldest = next(iter(self._batches))  # numbered in staging order
            if oldest > batch:
                break
            merged.update(self._batches.pop(oldest))
        self.base.write(merged, changelog_offset)
        for key in merged:
            staged = self._staged.get(key)
            if staged is not None and staged[0] <= batch:  # no later batch wrote it
                del self._staged[key]
                del self._sorted[bisect_left(self._sorted, key)]
