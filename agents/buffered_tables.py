"""Write-behind views of Faust tables for batch processing.

The evaluator must not let a contact's new state reach RocksDB before the
membership changes it produced are acknowledged by the broker (a kill -9 in
between would lose them). Waiting for an ack per input caps a worker at one
broker round trip per input. So inputs are evaluated in batches: reads see
the batch's own writes (an overlay), outputs are sent as they come, and at
the end of the batch, once every output is acked, the writes are applied to
the real tables in order, each under the event that made it so that Faust
changelogs it to that event's partition.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, MutableMapping
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import EventT, TableT
from faust.types.tuples import FutureMessage

__all__ = ["BufferedTable", "ChangelogTrackingTable", "WriteBatch"]

_DELETED = object()


class ChangelogTrackingTable(faust.Table):
    """A Faust table that keeps the future of every changelog record it
    sends until :meth:`take_changelog_futures` collects them.

    Faust's ``Table.__setitem__`` sends the changelog record and drops the
    future. ``app.producer.flush()`` is no substitute for waiting on it:
    ``ProducerBuffer.flush`` returns as soon as its queue is empty, while the
    record the buffer task took last may still be on its way into aiokafka
    (``add_message`` waits when the partition's batch is full), and it gives
    up after 0.1 s without progress; aiokafka's ``flush`` then waits only for
    the batches it already holds. A commit could then cover inputs whose
    state changes were not on the broker yet.
    """

    _changelog_futures: list[FutureMessage] | None = None

    def send_changelog(self, *args: Any, **kwargs: Any) -> FutureMessage:
        fut = super().send_changelog(*args, **kwargs)
        if self._changelog_futures is None:
            self._changelog_futures = []
        self._changelog_futures.append(fut)
        return fut

    def take_changelog_futures(self) -> list[FutureMessage]:
        futures, self._changelog_futures = self._changelog_futures or [], None
        return futures


class WriteBatch:
    """The ordered writes of one batch, across all buffered tables."""

    def __init__(self) -> None:
        self.writes: list[tuple[BufferedTable, str, Any, EventT]] = []
        self.event: EventT | None = None  # the event being processed

    def apply(self) -> list[FutureMessage]:
        """Write everything to the real tables, each under its own event.
        Returns the futures of the changelog records these writes sent (of
        the tables that track them, see :class:`ChangelogTrackingTable`)."""
        changelog: list[FutureMessage] = []
        token = _current_event.set(None)
        try:
            for table, key, value, event in self.writes:
                _current_event.set(weakref.ref(event))
                if value is _DELETED:
                    table.table.pop(key, None)
                else:
                    table.table[key] = value
        finally:
            _current_event.reset(token)
            for table in {id(w[0]): w[0] for w in self.writes}.values():
                table.overlay.clear()
                take = getattr(table.table, "take_changelog_futures", None)
                if take is not None:
                    changelog.extend(take())
            self.writes.clear()
        return changelog


class BufferedTable(MutableMapping[str, Any]):
    def __init__(self, table: TableT, batch: WriteBatch) -> None:
        self.table = table
        self.batch = batch
        self.overlay: dict[str, Any] = {}

    def _record(self, key: str, value: Any) -> None:
        if self.batch.event is None:
            raise RuntimeError("table write outside of an event")
        self.overlay[key] = value
        self.batch.writes.append((self, key, value, self.batch.event))

    def __getitem__(self, key: str) -> Any:
        value = self.overlay.get(key, None)
        if value is None:
            return self.table[key]
        if value is _DELETED:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self.overlay.get(key)
        if value is None:
            return self.table.get(key, default)
        return default if value is _DELETED else value

    def get_in(self, partition: int, key: str) -> Any:
        """``get`` for a key known to live in ``partition`` (the evaluator's
        hot path): one RocksDB read. Faust's ``Table.get`` checks the key
        exists and then reads it (two reads, two key encodings)."""
        value = self.overlay.get(key)
        if value is not None:
            return None if value is _DELETED else value
        store = self.table.data
        if hasattr(store, "_db_for_partition"):
            return store._db_for_partition(partition).get(store._encode_key(key))
        return self.table.get(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._record(key, value)

    def __delitem__(self, key: str) -> None:
        self._record(key, _DELETED)

    def pop(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        current = self.get(key, default)
        self._record(key, _DELETED)
        return current

    def __iter__(self) -> Iterator[str]:
        keys = {k for k in self.table if self.overlay.get(k) is not _DELETED}
        keys.update(k for k, v in self.overlay.items() if v is not _DELETED)
        return iter(keys)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        for key in self:
            yield key, self[key]
