"""Engine inputs that are not upstream contracts, and the result type."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from models.changes import MembershipChange
from models.segments import SegmentDefinition

if TYPE_CHECKING:
    from engine.state import ContactState

__all__ = ["AccountChanged", "SegmentChanged", "Tick", "Transition"]


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: re-evaluate the contact's segments that are due."""


@dataclass(frozen=True, slots=True)
class SegmentChanged:
    """A segment went live, changed, stopped or was deleted (absent from the
    catalog passed along). ``previous`` is informational."""

    segment_id: str
    previous: SegmentDefinition | None = None


@dataclass(frozen=True, slots=True)
class AccountChanged:
    """The contact's account was upserted or deleted (``accounts`` is new)."""

    account_id: str


@dataclass(frozen=True, slots=True)
class Transition:
    """``state`` None means: erase this contact's state entirely."""

    state: ContactState | None
    changes: list[MembershipChange] = field(default_factory=list)
    next_due: datetime | None = None
