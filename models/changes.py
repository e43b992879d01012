"""Output contract: membership changes published to journey engines."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from models.inputs import Contract, Id

__all__ = ["Cause", "CauseKind", "MembershipChange"]

CauseKind = Literal[
    "interaction",       # an interaction event (ref: event_id)
    "contact_update",    # a contact upsert
    "account_update",    # the contact's account changed or was deleted
    "time",              # a window boundary passed (no new input)
    "definition_change", # the segment went live or its definition changed
    "segment_deleted",   # the segment was deleted or stopped-and-deleted
    "static_edit",       # explicit add/remove
    "erasure",           # the contact was deleted
    "segment_change",    # a referenced segment's membership changed
    "consent",           # consent given or withdrawn (ref: "channel/purpose/topic" when one)
]


class Cause(Contract):
    kind: CauseKind
    ref: str | None = None


class MembershipChange(Contract):
    """``joined`` / ``left`` for one (segment, contact).

    ``sequence`` counts this pair's changes from 1 and alternates parity:
    odd = joined, even = left. Consumers drop any change whose sequence is
    not greater than the last one they applied, which makes replays after a
    crash harmless.
    """

    segment_id: Id
    contact_id: Id
    change: Literal["joined", "left"]
    at: AwareDatetime
    cause: Cause
    segment_version: int = Field(ge=1)
    sequence: int = Field(ge=1)
