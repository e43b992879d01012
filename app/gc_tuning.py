"""The worker's garbage-collector settings.

With CPython's default thresholds (700, 10, 10) a young collection starts
every 700 net allocations of container objects. The evaluator allocates
many (decoded states, their dicts and lists, records, futures), almost all
freed by reference counting, so the collector mostly re-scans survivors:
in the broker-free driver (100 segments) it took 1.24 s of 4.6 s of CPU,
0.29 s with the thresholds below. Side by side on the real broker
(bench/e2e_bench.py --segments 100, runs alternating, the spinner fix of
app/cli.py in both): 6,025 and 4,545 events/s with the defaults, 6,875
and 6,457 with these.

Cyclic garbage (asyncio tasks and exceptions hold a few cycles) lives a
little longer: a young collection every 20,000 allocations, a full one
after 100 middle ones, also bounded by CPython's rule that a full
collection waits until the survivors grew by a quarter. The objects of
start-up (modules, classes, the app) are frozen: full collections skip
them.
"""

from __future__ import annotations

import gc

__all__ = ["THRESHOLDS", "tune_collector"]

THRESHOLDS = (20_000, 20, 100)


def tune_collector() -> None:
    """Raise the thresholds, and freeze what exists now (call after start-up
    imports and app creation)."""
    gc.set_threshold(*THRESHOLDS)
    gc.collect()
    gc.freeze()
