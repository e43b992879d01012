"""Decoded contact states kept across a partition's batches.

Least recently written first, bounded by the bytes of their encoding: a
decoded state takes ~5.5 times that in Python objects (3.6 KB for a
660-byte state of the 100-segment wide mix), and the worker's RSS grows by
~25 times the budget once the cache is full (allocator fragmentation
included; bench/memory_bench.py: 166.6 MB with 1 MiB, 191.1 MB with 2 MiB,
313.6 MB with 8 MiB at 100,000 contacts). The
partition's processor is its contacts' only writer, so what is cached is
what the store and the staged batches hold, as long as the processor
drops the cache when a batch's writes are lost.
"""

from __future__ import annotations

from collections import OrderedDict

from engine import ContactState

__all__ = ["StateCache"]


class StateCache:
    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._states: OrderedDict[str, tuple[bytes, ContactState]] = OrderedDict()
        self._bytes = 0  # sum of the cached states' encoded sizes

    def get(self, contact_id: str) -> tuple[bytes, ContactState] | None:
        """``(encoded, decoded)`` of the contact, if cached."""
        return self._states.get(contact_id)

    def decode(self, contact_id: str, raw: bytes) -> ContactState:
        """The state ``raw`` encodes: the cached one when it is the same."""
        cached = self._states.get(contact_id)
        return cached[1] if cached is not None and cached[0] == raw else (
            ContactState.from_bytes(raw))

    def put(self, contact_id: str, encoded: bytes, state: ContactState) -> None:
        self.drop(contact_id)
        self._states[contact_id] = (encoded, state)
        self._bytes += len(encoded)

    def drop(self, contact_id: str) -> None:
        dropped = self._states.pop(contact_id, None)
        if dropped is not None:
            self._bytes -= len(dropped[0])

    def clear(self) -> None:
        self._states.clear()
        self._bytes = 0

    def trim(self) -> None:
        """Forget the least recently written states beyond the budget."""
        while self._bytes > self.budget_bytes:
            self._bytes -= len(self._states.popitem(last=False)[1][0])
