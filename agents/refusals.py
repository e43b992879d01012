"""Segment definitions the evaluator refused, per partition (issue #14:
"applied or visibly refused, never in between").

A definition that reaches the evaluator but cannot join the partition's
catalog (a reference cycle with definitions written elsewhere, a compile
error) is dead-lettered, and the previous version of the segment stays in
force. The refusal is recorded here too — the refused version and the
reason — so that the API, the CLI and the metrics show it until a later
version of the segment is applied or the segment is deleted.

Records live in the segments table (changelogged, so they survive restarts
and move with their partition) under ``"<partition>!<segment id>"``: ``!``
is in no segment id, and the catalog's keys are ``"<partition>:<id>"``, so
catalog rebuilds never see them.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import orjson

from engine import CompileError, CycleError
from models.segments import SegmentDefinition

__all__ = ["SegmentRefusals", "refusal_reason"]

_MAX_REASON = 300


def refusal_reason(exc: BaseException) -> str:
    """What the evaluator says when it refuses a definition."""
    text = str(exc) if isinstance(exc, CompileError | CycleError) else (
        f"{type(exc).__name__}: {exc}")
    return text if len(text) <= _MAX_REASON else text[:_MAX_REASON - 3] + "..."


class SegmentRefusals:
    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self._table = table  # the evaluator's (buffered) segments table

    @staticmethod
    def _key(partition: int, segment_id: str) -> str:
        return f"{partition}!{segment_id}"

    def record(self, partition: int, definition: SegmentDefinition, exc: BaseException
               ) -> None:
        self._table[self._key(partition, definition.id)] = orjson.dumps(
            {"version": definition.version, "reason": refusal_reason(exc)})

    def clear(self, partition: int, segment_id: str) -> None:
        """A version of the segment was applied, or it was deleted."""
        key = self._key(partition, segment_id)
        if self._table.get(key) is not None:
            self._table.pop(key, None)

    def get(self, partition: int, segment_id: str) -> dict[str, Any] | None:
        """``{"version", "reason"}`` of the refused definition, or None."""
        raw = self._table.get(self._key(partition, segment_id))
        return orjson.loads(raw) if raw is not None else None

    def of_partition(self, partition: int) -> dict[str, dict[str, Any]]:
        """Every refusal recorded for ``partition``: segment id -> record."""
        prefix = f"{partition}!"
        return {key[len(prefix):]: orjson.loads(value) for key, value in self._table.items()
                if isinstance(key, str) and key.startswith(prefix)}
