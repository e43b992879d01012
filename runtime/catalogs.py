"""Segment catalogs compiled from stored definitions, shared by partitions.

Definitions are broadcast, so every partition usually holds the same ones:
catalogs are immutable, and partitions with the same stored definitions
share one (compiled and indexed once per worker, not once per partition).

A stored definition that cannot be loaded or compiled back (one an older
version accepted) is quarantined: left out of the catalog with a reason,
reported once, and the partition runs with its other segments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from engine import Catalog, Limits
from models.segments import SegmentDefinition

__all__ = ["CatalogCache", "compile_stored", "short_reason"]

log = logging.getLogger(__name__)

#: (segment id, stored definition JSON), in segment id order
Stored = Sequence[tuple[str, bytes]]


def short_reason(exc: Exception) -> str:
    """A short reason: pydantic's first errors without the input they echo."""
    if isinstance(exc, ValidationError):
        parts = []
        for error in exc.errors(include_input=False)[:3]:
            loc = [str(p) for p in error["loc"]]
            if len(loc) > 4:  # deep trees: where it starts and where it failed
                loc = [*loc[:2], "…", loc[-1]]
            parts.append(f"{'.'.join(loc) or 'definition'}: {error['msg']}")
        text = "; ".join(parts)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


def compile_stored(stored: Stored, limits: Limits | None) -> tuple[Catalog, dict[str, str]]:
    """The catalog of the stored definitions and the quarantined ones
    (segment id -> reason)."""
    quarantined: dict[str, str] = {}
    pending: list[SegmentDefinition] = []
    for segment_id, raw in stored:
        try:
            pending.append(SegmentDefinition.model_validate_json(raw))
        except Exception as exc:  # any failure quarantines it
            quarantined[segment_id] = f"stored definition cannot be loaded: {short_reason(exc)}"
    # Each definition was accepted once, so an order exists in which every
    # reference resolves; find it by retrying.
    catalog = Catalog.empty(limits)
    errors: dict[str, str] = {}
    while pending:
        rest = []
        for definition in pending:
            try:
                catalog = catalog.put(definition)
            except Exception as exc:  # CycleError, CompileError, ...
                errors[definition.id] = short_reason(exc)
                rest.append(definition)
        if len(rest) == len(pending):
            for definition in rest:
                quarantined[definition.id] = (
                    f"stored definition cannot be compiled: {errors[definition.id]}")
            break
        pending = rest
    return catalog, quarantined


class CatalogCache:
    """One worker's compiled catalogs, shared by its partitions."""

    def __init__(self, limits: Limits | None = None,
                 on_quarantine: Callable[[str, str], None] | None = None) -> None:
        self.limits = limits
        self._on_quarantine = on_quarantine
        self._built: dict[tuple[bytes, ...], tuple[Catalog, dict[str, str]]] = {}
        # (definition JSON, catalog before) -> catalog after, of the last put
        self._last_put: tuple[bytes, Catalog, Catalog] | None = None
        self._reported: set[tuple[str, str]] = set()

    def build(self, stored: Stored) -> tuple[Catalog, dict[str, str]]:
        key = tuple(raw for _, raw in stored)
        built = self._built.get(key)
        if built is None:
            if len(self._built) > 64:  # old generations: drop, rebuilt on demand
                self._built.clear()
            built = self._built[key] = compile_stored(stored, self.limits)
        for segment_id, reason in built[1].items():
            if (segment_id, reason) not in self._reported:
                self._reported.add((segment_id, reason))
                log.error("segment %r quarantined: %s", segment_id, reason)
                if self._on_quarantine is not None:
                    self._on_quarantine(segment_id, reason)
        return built

    def put(self, before: Catalog, definition: SegmentDefinition, encoded: bytes) -> Catalog:
        """``before`` with ``definition`` (raises on cycles); the same
        broadcast applied to another partition's identical catalog is
        compiled once."""
        last = self._last_put
        if last is not None and last[0] == encoded and last[1] is before:
            return last[2]
        after = before.put(definition)
        self._last_put = (encoded, before, after)
        return after
