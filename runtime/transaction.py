"""A transaction per batch over one partition's store.

Reads see the transaction's own writes first (an update cache, as in
quixstreams' ``PartitionTransaction``); writes are coalesced per key;
``prepare()`` yields one changelog record per changed key; ``flush()``
writes the data and the changelog offset checkpoint in ONE write batch, so
the local copy never claims an offset its data does not hold.

Scans merge the update cache with the stored items in byte order, the one
order of :mod:`runtime.keys`; a scan sees the transaction as of the moment
it starts (writes made while iterating are not visible to that scan).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator
from types import TracebackType

from runtime.keys import Keyspace, prefix_upper_bound, stored_key
from runtime.types import ChangelogRecord, StorePartition, TransactionClosedError

__all__ = ["PartitionTransaction", "merge_overlay"]

_Item = tuple[bytes, bytes]
_KEYSPACE_BYTES = 1  # scans return keys without their keyspace byte


class PartitionTransaction:
    """Uncommitted writes of one batch on one partition.

    Lifecycle: reads/writes → ``prepare()`` (changelog records; no more
    writes) → ``flush(offset)`` (one atomic write; closed). ``close()`` or
    leaving a ``with`` block without flushing discards the writes.
    """

    def __init__(self, store: StorePartition) -> None:
        self._store = store
        self._updates: dict[bytes, bytes | None] = {}
        self._sorted: list[bytes] = []  # keys of _updates, byte order
        self._prepared: list[ChangelogRecord] | None = None
        self._closed = False

    # -- state ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def prepared(self) -> bool:
        return self._prepared is not None

    def __len__(self) -> int:
        """Number of changed keys so far."""
        return len(self._updates)

    def _check_open(self) -> None:
        if self._closed:
            raise TransactionClosedError("transaction is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._prepared is not None:
            raise TransactionClosedError("transaction is prepared: no more writes")

    # -- reads ---------------------------------------------------------------

    def get(self, keyspace: Keyspace, key: bytes) -> bytes | None:
        """The value as this transaction sees it (its own writes first)."""
        self._check_open()
        full = stored_key(keyspace, key)
        if full in self._updates:
            return self._updates[full]
        return self._store.get(full)

    def scan_range(
        self, keyspace: Keyspace, *, after: bytes | None = None, before: bytes | None = None
    ) -> Iterator[_Item]:
        """``(key, value)`` of ``keyspace`` with ``after < key < before``, byte order.

        ``after`` is a resume cursor: the last key a previous scan returned.
        """
        lower = stored_key(keyspace, b"" if after is None else after + b"\x00")
        if before is not None:
            upper: bytes | None = stored_key(keyspace, before)
        else:
            upper = prefix_upper_bound(bytes((keyspace,)))
        return self._scan(lower, upper)

    def scan_prefix(
        self, keyspace: Keyspace, prefix: bytes, *, after: bytes | None = None
    ) -> Iterator[_Item]:
        """``(key, value)`` of ``keyspace`` whose key starts with ``prefix``."""
        start = stored_key(keyspace, prefix)
        lower = start
        if after is not None:
            lower = max(start, stored_key(keyspace, after + b"\x00"))
        return self._scan(lower, prefix_upper_bound(start))

    def _scan(self, lower: bytes, upper: bytes | None) -> Iterator[_Item]:
        self._check_open()
        begin = bisect_left(self._sorted, lower)
        end = len(self._sorted) if upper is None else bisect_left(self._sorted, upper)
        overlay = [(k, self._updates[k]) for k in self._sorted[begin:end]]
        if upper is not None and lower >= upper:
            return iter(())
        return merge_overlay(self._store.iter_range(lower, upper), overlay, _KEYSPACE_BYTES)

    # -- writes --------------------------------------------------------------

    def put(self, keyspace: Keyspace, key: bytes, value: bytes) -> None:
        self._set(keyspace, key, value)

    def delete(self, keyspace: Keyspace, key: bytes) -> None:
        """Delete ``key`` (a tombstone in the changelog even if absent)."""
        self._set(keyspace, key, None)

    def _set(self, keyspace: Keyspace, key: bytes, value: bytes | None) -> None:
        self._check_writable()
        if keyspace is Keyspace.LOCAL:
            raise ValueError("the LOCAL keyspace is not transactional")
        full = stored_key(keyspace, key)
        if full not in self._updates:
            insort(self._sorted, full)
        self._updates[full] = value

    # -- commit --------------------------------------------------------------

    def prepare(self) -> list[ChangelogRecord]:
        """One changelog record per changed key, in byte order; freezes writes."""
        self._check_open()
        if self._prepared is None:
            self._prepared = [(k, self._updates[k]) for k in self._sorted]
        return self._prepared

    def flush(self, changelog_offset: int | None) -> None:
        """Write the data and the checkpoint in one batch; close.

        ``changelog_offset``: offset of this transaction's last changelog
        record, acknowledged by the broker (``None``: keep the checkpoint).
        """
        self.prepare()
        if changelog_offset is not None:
            current = self._store.checkpoint()
            if current is not None and changelog_offset < current:
                raise ValueError(f"checkpoint would go back: {current} -> {changelog_offset}")
        self._store.write(self._updates, changelog_offset)
        self._discard()

    def close(self) -> None:
        """Discard unflushed writes."""
        self._discard()

    def _discard(self) -> None:
        self._closed = True
        self._updates = {}
        self._sorted = []

    def __enter__(self) -> PartitionTransaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def merge_overlay(stored: Iterator[_Item], overlay: list[tuple[bytes, bytes | None]],
                  start: int = 0) -> Iterator[_Item]:
    """Stored items overlaid by writes not stored yet (``None``: deleted),
    both in byte order; keys lose their first ``start`` bytes."""
    if not overlay:  # the common case of a scan: no layer to merge
        return stored if start == 0 else ((key[start:], value) for key, value in stored)
    return _merged(stored, overlay, start)


def _merged(stored: Iterator[_Item], overlay: list[tuple[bytes, bytes | None]],
            start: int) -> Iterator[_Item]:
    i = 0
    for key, value in stored:
        while i < len(overlay) and overlay[i][0] < key:
            o_key, o_value = overlay[i]
            i += 1
            if o_value is not None:
                yield o_key[start:], o_value
        if i < len(overlay) and overlay[i][0] == key:
            o_value = overlay[i][1]
            i += 1
            if o_value is not None:
                yield key[start:], o_value
            continue
        yield key[start:], value
    for o_key, o_value in overlay[i:]:
        if o_value is not None:
            yield o_key[start:], o_value
