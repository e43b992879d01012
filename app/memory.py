"""Give memory the worker freed back to the operating system.

glibc keeps freed heap memory for reuse and returns only the top of the heap
on its own. The worker's churn (records, state encodings, RocksDB memtable
blocks allocated on the event loop's thread) leaves free pages scattered
through the heap, and RSS then climbs for many minutes under steady load
although live memory is flat (bench/soak.py: Python objects and allocator
blocks flat, RSS +9 MB a minute). ``malloc_trim(0)`` releases those pages;
it takes about a millisecond, so the worker calls it once a minute.

``limit_fragmentation()`` (at the worker's start) fixes glibc's mmap
threshold at 256 KiB. glibc raises that threshold, up to 32 MiB, each time
a large mmapped block is freed; from then on the large short-lived blocks
(RocksDB memtable arena blocks of ``write_buffer_bytes``/8, producer batch
buffers) come from the heap, between long-lived small objects, where free
space is reused only in part. With a fixed threshold they stay mmapped and
go back to the OS when freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

__all__ = ["MMAP_THRESHOLD", "TRIM_INTERVAL", "limit_fragmentation", "malloc_trim"]

log = logging.getLogger(__name__)

TRIM_INTERVAL = 60.0  # seconds between trims
MMAP_THRESHOLD = 256 * 1024  # blocks from this size on are mmapped (and unmapped when freed)
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def _load(function: str) -> Callable[..., int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return getattr(ctypes.CDLL(name), function)  # glibc only (musl, macOS: absent)
    except (OSError, AttributeError):
        return None


_TRIM = _load("malloc_trim")
_MALLOPT = _load("mallopt")


def limit_fragmentation() -> bool:
    """Fix glibc's mmap threshold (see the module doc); False where the C
    library has no mallopt or refuses it."""
    if _MALLOPT is None:
        return False
    return bool(_MALLOPT(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def malloc_trim() -> bool:
    """Release free heap pages; False where the C library has no malloc_trim."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
