"""Segment definitions: the stored (JSON) form of a segment.

A definition carries both the condition tree and its formula text; whichever
is given, the other is derived, and when both are given they must agree
(``models.formula`` parses and formats; both directions are exact).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, Field, field_validator

from models.conditions import Condition
from models.inputs import Contract, Id

__all__ = ["SegmentDefinition", "SegmentDelete", "SegmentKind", "SegmentStatus"]

SegmentKind = Literal["dynamic", "static", "compound"]
SegmentStatus = Literal["draft", "live", "stopped"]


class SegmentDefinition(Contract):
    """One segment.

    - dynamic / compound: membership follows ``condition`` (compound ones
      reference other segments with ``in segment "…"``);
    - static: no condition; members come from ``include`` and static edits;
    - any kind: ``include`` forces membership, ``exclude`` forbids it
      (exclude wins).
    Every change of definition bumps ``version``.
    """

    id: Id
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    kind: SegmentKind = "dynamic"
    formula: str | None = None
    condition: Condition | None = None
    include: list[Id] = Field(default_factory=list)
    exclude: list[Id] = Field(default_factory=list)
    status: SegmentStatus = "draft"
    version: int = Field(default=1, ge=1)
    timezone: str = "UTC"
    created_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class SegmentDelete(Contract):
    """Delete a segment: every member leaves (cause ``segment_deleted``)."""

    op: Literal["delete"] = "delete"
    segment_id: Id
    at: datetime | None = None
