"""Give memory the worker freed back to the operating system.

glibc keeps freed heap memory for reuse and returns only the top of the heap
on its own. The worker's churn (records, state encodings, RocksDB memtable
blocks allocated on the event loop's thread) leaves free pages scattered
through the heap, and RSS then climbs for many minutes under steady load
although live memory is flat (bench/soak.py: Python objects and allocator
blocks flat, RSS +9 MB a minute). ``malloc_trim(0)`` releases those pages;
it takes about a millisecond, so the worker calls it once a minute.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

__all__ = ["TRIM_INTERVAL", "malloc_trim"]

log = logging.getLogger(__name__)

TRIM_INTERVAL = 60.0  # seconds between trims


def _load_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim  # glibc only (musl, macOS: absent)
    except (OSError, AttributeError):
        return None


_TRIM = _load_trim()


def malloc_trim() -> bool:
    """Release free heap pages; False where the C library has no malloc_trim."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
