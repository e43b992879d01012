"""Debug only: what the worker's memory is made of, once a minute.

Off unless ``SEGMENTFLOW_MEMORY_DEBUG`` names a file. Then the worker starts
``tracemalloc`` (``SEGMENTFLOW_MEMORY_DEBUG_FRAMES`` frames, default 1: it
slows the worker, never use it in production) and appends, every
``SEGMENTFLOW_MEMORY_DEBUG_INTERVAL`` seconds (default 60), one JSON line:
RSS, Python heap traced, the top line-number growth since the first dump,
gc object counts by type that grew, and the RocksDB memory properties of
every store it was given (bench/soak.py reads it with ``--memory-debug``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import os
import time
import tracemalloc
from collections import Counter, deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["ROCKSDB_PROPERTIES", "MemoryDebug", "from_env", "rss_bytes"]

ROCKSDB_PROPERTIES = ("rocksdb.cur-size-all-mem-tables", "rocksdb.size-all-mem-tables",
                      "rocksdb.block-cache-usage", "rocksdb.block-cache-pinned-usage",
                      "rocksdb.estimate-table-readers-mem")


def rss_bytes(pid: int | str = "self") -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]


def mallinfo() -> dict[str, int] | None:
    """glibc's malloc figures: ``arena`` (heap bytes from sbrk and the
    threads' arenas), ``uordblks`` (in use), ``fordblks`` (free, kept),
    ``hblkhd`` (mmapped chunks). None without glibc >= 2.33."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        call = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    call.restype = _MallInfo2
    info = call()
    return {name: getattr(info, name) for name in ("arena", "uordblks", "fordblks", "hblkhd")}


def _rocksdb(db: Any) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for name in ROCKSDB_PROPERTIES:
        try:
            out[name.removeprefix("rocksdb.")] = db.property_int_value(name)
        except Exception:  # a closed DB or an unknown property
            out[name.removeprefix("rocksdb.")] = None
    return out


class MemoryDebug:
    def __init__(self, path: Path, frames: int = 1,
                 stores: Callable[[], Iterable[tuple[str, Any]]] = tuple,
                 sizes: Callable[[], dict[str, int]] = dict) -> None:
        self.path, self.stores, self.sizes = path, stores, sizes
        _SELF[0] = self
        if frames > 0:  # 0: no tracemalloc (RSS, malloc and RocksDB figures only)
            tracemalloc.start(frames)
        self._first: tracemalloc.Snapshot | None = None
        self._first_types: Counter[str] | None = None
        self._started = time.monotonic()

    def dump(self) -> None:
        snapshot = tracemalloc.take_snapshot().filter_traces(
            (tracemalloc.Filter(False, tracemalloc.__file__),)
        ) if tracemalloc.is_tracing() else None
        types = Counter(type(o).__name__ for o in gc.get_objects())
        record: dict[str, Any] = {
            "pid": os.getpid(), "seconds": round(time.monotonic() - self._started, 1),
            "rss": rss_bytes(), "traced": tracemalloc.get_traced_memory()[0],
            "malloc": mallinfo(),
            "gc_objects": sum(types.values()), "sizes": self.sizes(),
            "rocksdb": {name: _rocksdb(db) for name, db in self.stores()},
        }
        if self._first_types is None:
            self._first, self._first_types = snapshot, types
        else:
            if snapshot is not None and self._first is not None:
                record["top_growth"] = [
                    [str(s.traceback), s.size_diff, s.count_diff]
                    for s in snapshot.compare_to(self._first, "lineno")[:25]]
            assert self._first_types is not None
            grown = types.copy()
            grown.subtract(self._first_types)
            record["types_grown"] = grown.most_common(15)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def _gc_stores() -> list[tuple[str, Any]]:
    """Every open PartitionStore's Rdict (evaluator partitions, insights)."""
    from runtime.store import PartitionStore

    return [(str(o.path), o._db) for o in gc.get_objects()
            if isinstance(o, PartitionStore) and o._db is not None]


_SELF: list[Any] = [None]  # the dumper, left out of its own sizes
_OWNERS = ("app.", "agents.", "runtime.", "engine.", "aiokafka.", "faust.", "mode.",
           "prometheus_client.")


def _gc_sizes() -> dict[str, int]:
    """Lengths of the containers (over 100 items) held by objects of our
    modules and of the Kafka, Faust and Prometheus libraries."""
    sizes: Counter[str] = Counter()
    for o in gc.get_objects():
        module = getattr(type(o), "__module__", None)
        if not isinstance(module, str) or not module.startswith(_OWNERS):
            continue
        for name, value in getattr(o, "__dict__", {}).items():
            if isinstance(value, dict | list | set | deque | bytearray) and o is not _SELF[0]:
                n = len(value)
                if n > 100:
                    sizes[f"{type(o).__qualname__}.{name}"] += n
    return dict(sizes)


def from_env(stores: Callable[[], Iterable[tuple[str, Any]]] = _gc_stores,
             sizes: Callable[[], dict[str, int]] = _gc_sizes) -> tuple[MemoryDebug, float] | None:
    """The debug dumper and its interval when ``SEGMENTFLOW_MEMORY_DEBUG`` is set."""
    target = os.environ.get("SEGMENTFLOW_MEMORY_DEBUG")
    if not target:
        return None
    memray_file = os.environ.get("SEGMENTFLOW_MEMORY_DEBUG_MEMRAY")
    if memray_file:  # memray (not a dependency) on the path: native allocations too
        import atexit

        import memray

        tracker = memray.Tracker(f"{memray_file}.{os.getpid()}", native_traces=True,
                                 file_format=memray.FileFormat.AGGREGATED_ALLOCATIONS)
        tracker.__enter__()
        atexit.register(tracker.__exit__, None, None, None)
    frames = int(os.environ.get("SEGMENTFLOW_MEMORY_DEBUG_FRAMES", "1"))
    interval = float(os.environ.get("SEGMENTFLOW_MEMORY_DEBUG_INTERVAL", "60"))
    return MemoryDebug(Path(target), frames, stores, sizes), interval
