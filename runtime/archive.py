"""The retained interaction history of one partition's contacts.

Every interaction the engine accepts (not a duplicate) is kept in the
``ARCHIVE`` keyspace, whole (type and every property: a segment defined
later may read any of them), for the retention period. A segment that goes
live or changes is evaluated over it (:func:`engine.rebuild_history`), so
it answers as if it had been live since the first retained event.

Keys are ``(contact, time, event id)`` (see :mod:`runtime.keys`): a contact's
events are one prefix scan in time order, and a chunk of contacts (the
backfill's unit, in ``CONTACTS`` order, which is the same order) is one
range scan. Entries older than the retention are dropped when read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import groupby
from typing import Any

import orjson

from engine import ArchivedEvent
from runtime.keys import (
    Keyspace,
    archive_key,
    archive_prefix,
    contact_key,
    prefix_upper_bound,
)
from runtime.transaction import PartitionTransaction

__all__ = ["DAY_US", "Archive"]

DAY_US = 86_400_000_000
_TIME_BIAS = 1 << 63  # runtime.keys.encode_time's


class Archive:
    """A view of the ``ARCHIVE`` keyspace through one batch's transaction."""

    def __init__(self, txn: PartitionTransaction, retention_us: int,
                 prune: bool = True) -> None:
        """``prune``: delete the expired entries a read meets (a writable
        transaction: the evaluator's); readers only skip them."""
        self._txn, self._retention_us, self._prune = txn, retention_us, prune

    def add(self, contact_id: str, time_us: int, event_id: str, event_type: str,
            properties: dict[str, Any]) -> None:
        self._txn.put(Keyspace.ARCHIVE, archive_key(contact_id, time_us, event_id),
                      orjson.dumps((event_type, properties)))

    def events(self, contact_id: str, now_us: int,
               types: Iterable[str] | None = None) -> list[ArchivedEvent]:
        """One contact's retained events, time order (of ``types`` only, if given)."""
        scan = self._txn.scan_prefix(Keyspace.ARCHIVE, archive_prefix(contact_id))
        return [event for _, event in self._decode(scan, now_us, types)]

    def events_of(self, first: str, last: str, now_us: int,
                  types: Iterable[str] | None = None) -> dict[str, list[ArchivedEvent]]:
        """Retained events of every contact from ``first`` to ``last``
        (inclusive, byte order), by contact: one range scan."""
        upper = prefix_upper_bound(archive_prefix(last))
        scan = self._txn.scan_range(Keyspace.ARCHIVE, after=contact_key(first), before=upper)
        decoded = self._decode(scan, now_us, types)
        return {contact: [event for _, event in group]
                for contact, group in groupby(decoded, key=lambda x: x[0])}

    def erase(self, contact_id: str) -> None:
        """Forget a contact's history (erasure)."""
        keys = [key for key, _ in
                self._txn.scan_prefix(Keyspace.ARCHIVE, archive_prefix(contact_id))]
        for key in keys:
            self._txn.delete(Keyspace.ARCHIVE, key)

    def sweep(self, after: bytes | None, now_us: int, limit: int) -> bytes | None:
        """Delete expired entries among up to ``limit`` keys after ``after``
        (any contact); the cursor to continue from, None at the end."""
        horizon = now_us - self._retention_us + _TIME_BIAS
        last = None
        seen = 0
        expired = []
        for key, _ in self._txn.scan_range(Keyspace.ARCHIVE, after=after):
            seen += 1
            last = key
            end = key.find(0)
            if int.from_bytes(key[end + 1:end + 9], "big") < horizon:
                expired.append(key)
            if seen >= limit:
                break
        for key in expired:
            self._txn.delete(Keyspace.ARCHIVE, key)
        return last if seen >= limit else None

    def _decode(self, scan: Iterator[tuple[bytes, bytes]], now_us: int,
                types: Iterable[str] | None = None) -> Iterator[tuple[str, ArchivedEvent]]:
        horizon = now_us - self._retention_us + _TIME_BIAS  # compared biased
        # A value starts with its type (orjson of [type, props]): other
        # types are skipped without decoding them.
        wanted = None if types is None else tuple(orjson.dumps([t])[:-1] + b"," for t in types)
        expired: list[bytes] = []
        prefix, contact = b"", ""
        for key, value in scan:  # decode_archive_key, inlined: the hot loop of a go-live
            end = key.find(0)
            if key[:end] != prefix:
                prefix, contact = key[:end], key[:end].decode()
            biased = int.from_bytes(key[end + 1:end + 9], "big")
            if biased < horizon:
                expired.append(key)
                continue
            if wanted is not None and not value.startswith(wanted):
                continue
            event_type, properties = orjson.loads(value)
            yield contact, (biased - _TIME_BIAS, key[end + 9:].decode(), event_type, properties)
        if self._prune:  # after the scan: deletes change the overlay it reads
            for key in expired:
                self._txn.delete(Keyspace.ARCHIVE, key)
