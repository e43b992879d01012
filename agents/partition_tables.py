"""Per-partition views over the evaluator's tables.

Every table is written only by the evaluator agent, inside its iteration, so
the changelog partition is the current event's partition. Values replicated
into every partition (segment definitions, accounts) are keyed
``"<partition>:<id>"`` so each partition replays its own copy.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

import orjson
from faust.types import TableT

from agents.buffered_tables import BufferedTable
from agents.partition_scan import scan_partition, scan_prefix
from engine import Catalog, Limits
from models.segments import SegmentDefinition
from runtime.catalogs import compile_stored

__all__ = ["AccountIndex", "DueIndex", "PartitionAccounts", "PartitionCatalogs"]

log = logging.getLogger(__name__)


class PartitionCatalogs:
    """The segment catalog of each partition, cached in memory and rebuilt
    from the segments table after a restart or rebalance.

    Definitions are broadcast, so every partition usually holds the same
    ones: catalogs are immutable, and partitions with the same definitions
    share one (compiled and indexed once, not once per partition).

    A stored definition that cannot be loaded or compiled back (one an older
    version accepted: e.g. 220 nested ``not``, past pydantic's JSON depth
    limit) is quarantined at the rebuild: left out of the catalog with a
    reason (``quarantined``), reported once through ``on_quarantine``, and
    the partition runs with its other segments. A new version or a delete of
    that segment replaces it."""

    def __init__(self, table: MutableMapping[str, Any], limits: Limits | None = None,
                 on_quarantine: Callable[[str, str], None] | None = None) -> None:
        self._table = table
        self._limits = limits
        self._on_quarantine = on_quarantine
        self._cache: dict[int, Catalog] = {}
        # (catalog before, definition) -> catalog after, for the last put
        self._last_put: tuple[str, Catalog, Catalog] | None = None
        # stored definitions -> (catalog, quarantined segment id -> reason)
        self._built: dict[tuple[bytes, ...], tuple[Catalog, dict[str, str]]] = {}
        self._quarantined: dict[int, dict[str, str]] = {}
        self._reported: set[tuple[str, str]] = set()  # kept across rebalances

    def clear(self) -> None:
        self._cache.clear()
        self._last_put = None
        self._built.clear()
        self._quarantined.clear()

    def get(self, partition: int) -> Catalog:
        catalog = self._cache.get(partition)
        if catalog is None:
            catalog = self._cache[partition] = self._rebuild(partition)
        return catalog

    def quarantined(self, partition: int) -> dict[str, str]:
        """Segment id -> reason, for the stored definitions of ``partition``
        left out of its catalog."""
        self.get(partition)
        return dict(self._quarantined.get(partition, {}))

    def _rebuild(self, partition: int) -> Catalog:
        prefix = f"{partition}:"
        entries = sorted(
            (value, key[len(prefix):]) for key, value in self._table.items()
            if key.startswith(prefix))
        stored = tuple(value for value, _ in entries)
        built = self._built.get(stored)
        if built is None:
            built = self._built[stored] = self._compile(entries)
        catalog, quarantined = built
        if quarantined:
            self._quarantined[partition] = quarantined
        else:
            self._quarantined.pop(partition, None)
        for segment_id, reason in quarantined.items():
            if (segment_id, reason) not in self._reported:
                self._reported.add((segment_id, reason))
                log.error("segment %r quarantined (partition %d and any other holding the "
                          "same definition): %s", segment_id, partition, reason)
                if self._on_quarantine is not None:
                    self._on_quarantine(segment_id, reason)
        return catalog

    def _compile(self, entries: list[tuple[bytes, str]]) -> tuple[Catalog, dict[str, str]]:
        return compile_stored([(segment_id, raw) for raw, segment_id in entries], self._limits)

    def put(self, partition: int, definition: SegmentDefinition) -> Catalog:
        before = self.get(partition)
        encoded = definition.model_dump_json()
        last = self._last_put
        if last is not None and last[0] == encoded and last[1] is before:
            catalog = last[2]  # the same broadcast, already compiled for another partition
        else:
            catalog = before.put(definition)  # raises on cycles
            self._last_put = (encoded, before, catalog)
        self._table[f"{partition}:{definition.id}"] = encoded.encode()
        self._cache[partition] = catalog
        self._release(partition, definition.id)
        return catalog

    def remove(self, partition: int, segment_id: str) -> Catalog:
        catalog = self.get(partition).remove(segment_id)
        self._table.pop(f"{partition}:{segment_id}", None)
        self._cache[partition] = catalog
        self._release(partition, segment_id)
        return catalog

    def _release(self, partition: int, segment_id: str) -> None:
        """The stored definition of ``segment_id`` was replaced or deleted."""
        quarantined = self._quarantined.get(partition)
        if quarantined and segment_id in quarantined:
            rest = {k: v for k, v in quarantined.items() if k != segment_id}  # may be shared
            if rest:
                self._quarantined[partition] = rest
            else:
                del self._quarantined[partition]


class PartitionAccounts(Mapping[str, Mapping[str, Any]]):
    """One partition's replicated accounts (id -> attributes), for the engine.

    ``cache``: decoded accounts kept across inputs (the evaluator's, the only
    writer, so its own upserts and deletes keep it true; dropped on
    rebalance). Without it every contact input decoded its account again."""

    _MISSING: Any = object()

    def __init__(self, table: Any, partition: int,
                 cache: dict[str, Any] | None = None) -> None:
        self._table, self._prefix, self._partition = table, f"{partition}:", partition
        self._cache = cache

    def _load(self, account_id: str) -> Any:
        cache = self._cache
        if cache is not None:
            found = cache.get(account_id, self._MISSING)
            if found is not self._MISSING:
                return found
        if isinstance(self._table, BufferedTable):
            raw = self._table.get_in(self._partition, self._prefix + account_id)
        else:
            raw = self._table.get(self._prefix + account_id)
        value = orjson.loads(raw) if raw is not None else None
        if cache is not None:
            cache[account_id] = value
        return value

    def __getitem__(self, account_id: str) -> Mapping[str, Any]:
        value = self._load(account_id)
        if value is None:
            raise KeyError(account_id)
        return value

    def get(self, account_id: str, default: Any = None) -> Any:  # type: ignore[override]
        value = self._load(account_id)
        return default if value is None else value

    def __iter__(self) -> Iterator[str]:
        n = len(self._prefix)
        return (k[n:] for k in self._table if k.startswith(self._prefix))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def upsert(self, account_id: str, attributes: dict[str, Any], merge: bool) -> None:
        current = dict(self.get(account_id) or {}) if merge else {}
        current.update(attributes)
        # In merge mode a null removes the attribute, as for contacts.
        cleaned = {k: v for k, v in current.items() if v is not None}
        self._table[self._prefix + account_id] = orjson.dumps(cleaned)
        if self._cache is not None:
            self._cache[account_id] = cleaned

    def delete(self, account_id: str) -> None:
        self._table.pop(self._prefix + account_id, None)
        if self._cache is not None:
            self._cache[account_id] = None


class AccountIndex:
    """account -> contacts of this partition, so an account change
    re-evaluates exactly its contacts.

    One key per (account, contact) pair, ``P:account/contact``, read back
    with a prefix scan: a contact joining or leaving an account is one small
    write, whatever the account's size (a list per account made loading
    contacts quadratic: every join rewrote the whole list)."""

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self._table = table

    def contacts(self, partition: int, account_id: str) -> list[str]:
        prefix = f"{partition}:{account_id}/"
        return [key[len(prefix):] for key in scan_prefix(self._table, partition, prefix)]

    def move(self, partition: int, contact_id: str, old: str | None, new: str | None) -> None:
        if old == new:
            return
        if old is not None:
            self._table.pop(f"{partition}:{old}/{contact_id}", None)
        if new is not None:
            self._table[f"{partition}:{new}/{contact_id}"] = b"1"


class DueIndex:
    """When each contact must be re-evaluated without new input.

    The table (contact_id -> due instant in µs) survives restarts; a heap per
    partition answers "who is due by now" without scanning. Heap entries are
    checked against the table when popped (lazy deletion), so moving a due
    time is one table write and one push. A moved due time leaves its old
    entry behind until that instant passes (weeks, for a 30-day window), so
    a heap that holds more than twice its live entries is compacted against
    the table: memory stays proportional to contacts, not to inputs.
    """

    _MIN_REBUILD = 1024  # never rebuild a heap smaller than this

    def __init__(self, table: TableT, partitions: int) -> None:
        self._table = table
        self._partitions = partitions
        self._heaps: dict[int, list[tuple[int, str]]] = {}
        self._live: dict[int, int] = {}  # partition -> live entries (approximate)

    def clear(self) -> None:
        self._heaps.clear()
        self._live.clear()

    def __len__(self) -> int:
        return sum(len(h) for h in self._heaps.values())

    def _heap(self, partition: int) -> list[tuple[int, str]]:
        heap = self._heaps.get(partition)
        if heap is None:
            heap = []
            after = None
            while True:
                chunk = scan_partition(self._table, partition, self._partitions, after, 10_000)
                heap.extend((int(value), key) for key, value in chunk)
                if len(chunk) < 10_000:
                    break
                after = chunk[-1][0]
            heapq.heapify(heap)
            self._heaps[partition] = heap
            self._live[partition] = len(heap)
        return heap

    def _count(self, partition: int, delta: int) -> None:
        """Track live entries; compact a heap mostly made of superseded ones."""
        live = self._live.get(partition, 0) + delta
        self._live[partition] = live
        heap = self._heaps.get(partition)
        if heap is not None and len(heap) > max(self._MIN_REBUILD, 2 * live):
            self._compact(partition, heap)

    def _compact(self, partition: int, heap: list[tuple[int, str]]) -> None:
        """Keep only the entries the table still holds. Reads go through the
        table (and so see the current batch's unflushed writes), one per
        contact."""
        current: dict[str, int | None] = {}
        kept: list[tuple[int, str]] = []
        for at, contact_id in heap:
            if contact_id not in current:
                stored = self._table.get(contact_id)
                current[contact_id] = None if stored is None else int(stored)
            if current[contact_id] == at:
                kept.append((at, contact_id))
                current[contact_id] = -1  # one entry per contact
        heapq.heapify(kept)
        heap[:] = kept
        self._live[partition] = len(kept)

    def set(self, partition: int, contact_id: str, old_us: int | None, new_us: int | None) -> None:
        if old_us == new_us:
            return
        if new_us is None:
            self._table.pop(contact_id, None)
            self._count(partition, -1)
            return
        self._table[contact_id] = str(new_us).encode()
        heapq.heappush(self._heap(partition), (new_us, contact_id))
        self._count(partition, 1 if old_us is None else 0)

    def pop_due(self, partition: int, now_us: int, limit: int) -> list[str]:
        """Contacts due by ``now_us``, removed from the index: the caller
        re-evaluates each and sets its next due time (``old_us=None``)."""
        heap = self._heap(partition)
        due: list[str] = []
        while heap and heap[0][0] <= now_us and len(due) < limit:
            at, contact_id = heapq.heappop(heap)
            stored = self._table.get(contact_id)
            if stored is not None and int(stored) == at:
                self._table.pop(contact_id, None)
                due.append(contact_id)
        if due:
            self._count(partition, -len(due))
        return due

    def earliest(self, partition: int) -> int | None:
        heap = self._heap(partition)
        return heap[0][0] if heap else None
