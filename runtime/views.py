"""Typed views over one batch's transaction: accounts, the account index,
the due queue, backfill progress and the event clock.

Each view reads and writes only through the transaction it is handed, so
what a batch sees is the store plus every earlier write (staged batches,
then its own); in-memory caches live on the processor and are true because
it is the partition's only writer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from itertools import islice
from typing import Any

import orjson

from runtime.keys import (
    Keyspace,
    account_contact_key,
    account_contact_prefix,
    decode_due_key,
    due_key,
    encode_time,
)
from runtime.transaction import PartitionTransaction

__all__ = ["AccountIndex", "Accounts", "Backfill", "DueQueue", "EventClock", "first_items"]

_MISSING: Any = object()


class Accounts(Mapping[str, Mapping[str, Any]]):
    """The partition's replicated accounts (id -> attributes), for the engine.

    ``cache``: decoded accounts kept across batches (the processor's)."""

    def __init__(self, txn: PartitionTransaction, cache: dict[str, Any]) -> None:
        self._txn, self._cache = txn, cache

    def _load(self, account_id: str) -> Any:
        found = self._cache.get(account_id, _MISSING)
        if found is _MISSING:
            raw = self._txn.get(Keyspace.ACCOUNTS, account_id.encode())
            found = self._cache[account_id] = orjson.loads(raw) if raw is not None else None
        return found

    def __getitem__(self, account_id: str) -> Mapping[str, Any]:
        value = self._load(account_id)
        if value is None:
            raise KeyError(account_id)
        return value  # type: ignore[no-any-return]

    def get(self, account_id: str, default: Any = None) -> Any:  # type: ignore[override]
        value = self._load(account_id)
        return default if value is None else value

    def __iter__(self) -> Iterator[str]:
        return (key.decode() for key, _ in self._txn.scan_range(Keyspace.ACCOUNTS))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def upsert(self, account_id: str, attributes: dict[str, Any], merge: bool) -> None:
        current = dict(self.get(account_id) or {}) if merge else {}
        current.update(attributes)
        # In merge mode a null removes the attribute, as for contacts.
        cleaned = {k: v for k, v in current.items() if v is not None}
        self._txn.put(Keyspace.ACCOUNTS, account_id.encode(), orjson.dumps(cleaned))
        self._cache[account_id] = cleaned

    def delete(self, account_id: str) -> None:
        self._txn.delete(Keyspace.ACCOUNTS, account_id.encode())
        self._cache[account_id] = None


class AccountIndex:
    """account -> this partition's contacts: one key per pair, prefix scan."""

    def __init__(self, txn: PartitionTransaction) -> None:
        self._txn = txn

    def contacts(self, account_id: str) -> list[str]:
        prefix = account_contact_prefix(account_id)
        n = len(prefix)
        return [key[n:].decode() for key, _ in
                self._txn.scan_prefix(Keyspace.ACCOUNT_CONTACTS, prefix)]

    def move(self, contact_id: str, old: str | None, new: str | None) -> None:
        if old == new:
            return
        if old is not None:
            self._txn.delete(Keyspace.ACCOUNT_CONTACTS, account_contact_key(old, contact_id))
        if new is not None:
            self._txn.put(Keyspace.ACCOUNT_CONTACTS, account_contact_key(new, contact_id), b"")


class DueQueue:
    """When each contact must be re-evaluated without new input: keys
    ``(due µs, contact)`` in byte (= time) order, so waking is a range scan.

    ``earliest`` (the processor's, kept across batches) saves the scan while
    nothing is due; it may be too early (after a delete) but never too late.
    """

    _UNKNOWN = -1

    def __init__(self, txn: PartitionTransaction, earliest: list[int | None]) -> None:
        self._txn, self._earliest = txn, earliest

    def set(self, contact_id: str, old_us: int | None, new_us: int | None) -> None:
        if old_us == new_us:
            return
        if old_us is not None:
            self._txn.delete(Keyspace.DUE, due_key(old_us, contact_id))
        if new_us is not None:
            self._txn.put(Keyspace.DUE, due_key(new_us, contact_id), b"")
            current = self._earliest[0]
            if current is None or (current != self._UNKNOWN and new_us < current):
                self._earliest[0] = new_us

    def _first(self) -> int | None:
        first = next(iter(self._txn.scan_range(Keyspace.DUE)), None)
        return decode_due_key(first[0])[0] if first is not None else None

    def pop_due(self, now_us: int, limit: int) -> list[str]:
        """Contacts due by ``now_us`` (at most ``limit``), their entries
        removed: the caller re-evaluates each and sets its next due time."""
        if self._earliest[0] == self._UNKNOWN:
            self._earliest[0] = self._first()
        earliest = self._earliest[0]
        if earliest is None or earliest > now_us:
            return []
        scan = self._txn.scan_range(Keyspace.DUE, before=encode_time(now_us + 1))
        due = [decode_due_key(key) for key, _ in islice(scan, limit)]
        for at, contact_id in due:
            self._txn.delete(Keyspace.DUE, due_key(at, contact_id))
        self._earliest[0] = self._first()
        return [contact_id for _, contact_id in due]


@dataclass
class Backfill:
    """Progress of re-evaluating one partition's contacts for one segment."""

    segment_id: str
    version: int  # 0 for a deletion
    scanned: int = 0
    complete: bool = False
    after: str | None = None

    def to_bytes(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Backfill:
        return cls(**orjson.loads(raw))


class EventClock:
    """The partition's event time (µs): the latest input time seen, kept in
    ``META`` so a restart resumes at the same instant."""

    KEY = b"event-clock"

    @staticmethod
    def load(txn: PartitionTransaction) -> int | None:
        raw = txn.get(Keyspace.META, EventClock.KEY)
        return int(raw) if raw is not None else None

    @staticmethod
    def store(txn: PartitionTransaction, at_us: int) -> None:
        txn.put(Keyspace.META, EventClock.KEY, str(at_us).encode())


def first_items(txn: PartitionTransaction, keyspace: Keyspace, after: bytes | None,
                n: int) -> list[tuple[bytes, bytes]]:
    """Up to ``n`` items of ``keyspace`` after ``after`` (byte order)."""
    return list(islice(txn.scan_range(keyspace, after=after), n))
