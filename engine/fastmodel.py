"""Build already-valid pydantic models without re-validating them.

The engine creates ``MembershipChange`` / ``Cause`` values from data it has
just computed and typed itself; validation would cost more than the rest of
the step. ``tests/unit/test_engine_api.py`` checks the result equals the
validated model.
"""

from __future__ import annotations

from datetime import datetime

from models.changes import Cause, MembershipChange

__all__ = ["cause", "membership_change"]

_new = object.__new__
_set = object.__setattr__


def cause(kind: str, ref: str | None = None) -> Cause:
    m = _new(Cause)
    _set(m, "__dict__", {"kind": kind, "ref": ref})
    _set(m, "__pydantic_fields_set__", {"kind", "ref"} if ref is not None else {"kind"})
    _set(m, "__pydantic_extra__", None)
    _set(m, "__pydantic_private__", None)
    return m


_FIELDS_SET = {"segment_id", "contact_id", "change", "at", "cause", "segment_version", "sequence"}


def membership_change(
    segment_id: str,
    contact_id: str,
    joined: bool,
    at: datetime,
    why: Cause,
    version: int,
    sequence: int,
) -> MembershipChange:
    m = _new(MembershipChange)
    _set(m, "__dict__", {
        "segment_id": segment_id,
        "contact_id": contact_id,
        "change": "joined" if joined else "left",
        "at": at,
        "cause": why,
        "segment_version": version,
        "sequence": sequence,
    })
    _set(m, "__pydantic_fields_set__", _FIELDS_SET)  # frozen model: never mutated
    _set(m, "__pydantic_extra__", None)
    _set(m, "__pydantic_private__", None)
    return m
