"""Both partition-store backends behind one factory, for the runtime tests."""

from __future__ import annotations

from pathlib import Path

from runtime.memory import MemoryStore
from runtime.store import Store

__all__ = ["BACKENDS", "AnyStore", "open_store"]

AnyStore = Store | MemoryStore
BACKENDS = ("rocksdb", "memory")


def open_store(kind: str, path: Path) -> AnyStore:
    """A fresh store: RocksDB under ``path`` (small memory), or in memory."""
    if kind == "rocksdb":
        return Store(path, cache_bytes=2**20, write_buffer_bytes=2**20)
    return MemoryStore()
