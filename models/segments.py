"""Segment definitions: the stored (JSON) form of a segment.

A definition carries both the condition tree and its formula text; whichever
is given, the other is derived, and when both are given they must agree
(``models.formula`` parses and formats; both directions are exact).
A formula the parser refuses surfaces as a ``ValidationError`` on ``formula``
whose message is the ``FormulaError`` text (``line L, column C: …``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, Field, field_validator, model_validator

from models.conditions import Condition, InSegment
from models.formula import format_condition, parse_formula
from models.formula.limits import MAX_FORMULA_LENGTH, nesting_problem
from models.inputs import Contract, Id

__all__ = [
    "MAX_SEGMENT_VERSION", "SegmentDefinition", "SegmentDelete", "SegmentKind", "SegmentStatus",
]

# A contact's state packs, per segment, the sequence of its last change (low
# 32 bits) and the segment version that change carried (the bits above) into
# one integer that must fit a signed 64-bit integer (orjson, Kafka consumers):
# versions go up to 2**31 - 1, sequences up to 2**32 - 1 changes per
# (segment, contact). Both are far beyond any realistic count.
MAX_SEGMENT_VERSION = 2**31 - 1

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
    #: who answers for the segment (a person, an email, a team); free text
    owner: str = Field(default="", max_length=200)
    kind: SegmentKind = "dynamic"
    formula: str | None = None
    condition: Condition | None = None
    include: list[Id] = Field(default_factory=list)
    exclude: list[Id] = Field(default_factory=list)
    status: SegmentStatus = "draft"
    version: int = Field(default=1, ge=1, json_schema_extra={"maximum": MAX_SEGMENT_VERSION})
    timezone: str = "UTC"
    created_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None

    @field_validator("version")
    @classmethod
    def _storable_version(cls, value: int) -> int:
        if value > MAX_SEGMENT_VERSION:
            raise ValueError(
                f"version {value} is above {MAX_SEGMENT_VERSION}, the largest version "
                "segmentflow can store (it shares a 64-bit integer with the sequence number)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("formula")
    @classmethod
    def _parsable_formula(cls, value: str | None) -> str | None:
        """Blank means absent (UIs send ""); otherwise it must parse, and the
        error is reported on ``formula`` with its line and column."""
        if value is None or not value.strip():
            return None
        parse_formula(value)
        return value

    @model_validator(mode="after")
    def _formula_matches_condition(self) -> SegmentDefinition:
        """Derive the missing form, or check that both forms agree; then the
        kind rules (static: neither; dynamic/compound: one) and no
        self-reference."""
        if self.condition is not None and (problem := nesting_problem(self.condition)):
            raise ValueError(problem)
        if self.formula is not None:
            parsed = parse_formula(self.formula)
            if self.condition is None:
                self._derive("condition", parsed)
            elif parsed is not self.condition and (
                    parsed.model_dump_json() != self.condition.model_dump_json()):
                # Same JSON: they agree (the common case, cheap). Otherwise
                # find where; equal values of one type (0.0 / -0.0) agree.
                mismatch = _first_difference(
                    parsed.model_dump(mode="json"), self.condition.model_dump(mode="json")
                )
                if mismatch:
                    raise ValueError(
                        f"formula and condition disagree at condition{mismatch}; "
                        f"the condition reads: {_safe_format(self.condition)}"
                    )
        elif self.condition is not None:
            formula = format_condition(self.condition)
            if len(formula) > MAX_FORMULA_LENGTH:
                raise ValueError(f"the condition reads as a formula of {len(formula)} "
                                 f"characters; at most {MAX_FORMULA_LENGTH} are allowed "
                                 "(MAX_FORMULA_LENGTH)")
            self._derive("formula", formula)
        if self.kind == "static" and self.condition is not None:
            raise ValueError(
                "a static segment has no formula or condition (its members are "
                "explicit); use kind dynamic or compound"
            )
        if self.kind != "static" and self.condition is None:
            raise ValueError(f"a {self.kind} segment needs a formula or a condition")
        if self.condition is not None and self.id in _referenced_segments(self.condition):
            raise ValueError(f'segment "{self.id}" references itself (in segment "{self.id}")')
        return self

    def _derive(self, name: str, value: Any) -> None:
        # The model is frozen; filling in the derived form is part of
        # validation, and it counts as set so exclude_unset dumps keep both.
        object.__setattr__(self, name, value)
        self.__pydantic_fields_set__.add(name)


def _referenced_segments(cond: Any) -> set[str]:
    """Segment ids named by ``in segment`` anywhere in a tree (iterative;
    fields read from ``__dict__``, see ``condition_depth``)."""
    found: set[str] = set()
    stack = [cond]
    while stack:
        node = stack.pop()
        if isinstance(node, InSegment):
            found.add(node.segment_id)
            continue
        fields = getattr(node, "__dict__", None) or {}
        for name in ("arg", "where"):
            child = fields.get(name)
            if child is not None:
                stack.append(child)
        stack.extend(fields.get("args") or ())
    return found


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The first path where two JSON trees differ, with both values, e.g.
    ``.args[1].value: formula has 3, condition has 4`` (None when equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = _first_difference(a.get(key), b.get(key), f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    if type(a) is type(b) and a == b:
        return None
    return f"{path}: formula has {_json(a)}, condition has {_json(b)}"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _safe_format(cond: Condition) -> str:
    try:
        return format_condition(cond)
    except ValueError as exc:
        return f"(not expressible as a formula: {exc})"


class SegmentDelete(Contract):
    """Delete a segment: every member leaves (cause ``segment_deleted``)."""

    op: Literal["delete"] = "delete"
    segment_id: Id
    at: datetime | None = None
