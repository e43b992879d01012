"""Shapes shared by the runtime's modules (no behaviour here)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from runtime.transaction import PartitionTransaction

__all__ = [
    "ChangelogRecord",
    "OffsetRecord",
    "StoreClosedError",
    "StorePartition",
    "TransactionClosedError",
    "Updates",
]

#: One changelog record: stored key, value bytes or ``None`` for a delete.
ChangelogRecord = tuple[bytes, bytes | None]
#: A changelog record as read back from Kafka: (offset, key, value or None).
OffsetRecord = tuple[int, bytes, bytes | None]
#: Coalesced writes: stored key -> value, or ``None`` for a delete.
Updates = Mapping[bytes, bytes | None]


class StoreClosedError(RuntimeError):
    """A partition store was used after revoke/close."""


class TransactionClosedError(RuntimeError):
    """A transaction was used after flush/close, or written after prepare."""


class StorePartition(Protocol):
    """What a transaction and restore need from one partition's storage.

    Implemented by :class:`runtime.store.PartitionStore` (RocksDB) and
    :class:`runtime.memory.MemoryPartitionStore` (tests). Keys are stored
    keys (see :mod:`runtime.keys`); every iteration is in byte order.
    """

    @property
    def partition(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    def get(self, key: bytes) -> bytes | None: ...

    def iter_range(self, lower: bytes, upper: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """Items with ``lower <= key < upper`` (no upper bound if ``None``)."""
        ...

    def write(self, updates: Updates, checkpoint: int | None) -> None:
        """Apply ``updates`` and, if given, the checkpoint, atomically."""
        ...

    def checkpoint(self) -> int | None:
        """The changelog offset the stored data is complete up to, if any."""
        ...

    def begin(self) -> PartitionTransaction: ...

    def close(self) -> None: ...
