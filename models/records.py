"""The other records segmentflow writes to Kafka, as contracts.

``models.inputs`` and ``models.changes`` describe what upstream publishes and
the membership changes; this module describes the rest of the wire, for the
AsyncAPI document (``models.asyncapi``) and the tests that hold the service
to it:

- ``EvaluatorInput``: the envelope ``{"kind": K, "body": {...}}`` on the
  internal ``<prefix>.evaluator-input`` log (ingest forwards each validated
  input in it as upstream wrote it; accounts and segment definitions go to
  every partition). ``clock`` (``{"to": time}``, written to every partition
  by ``POST /clock/advance``) moves each partition's event clock forward
  (docs/clock.md). ``tick`` and ``backfill`` were commands of the former
  Faust evaluator (the clock's broadcast, a backfill's next chunk), removed;
  nothing writes them now, and the partition runtime (``runtime/``) accepts
  and ignores them where an older version left them in the log.
- ``MembershipSnapshot``: the value on the compacted ``<prefix>.memberships``
  topic under the key ``"<segment_id>/<contact_id>"`` while the contact is a
  member; a tombstone (null value) once it leaves.
- ``DeadLetter``: a refused input on ``<prefix>.dead-letters``.

Nothing here is imported on the hot path; the agents build these records
directly (``agents/codec.py``, the evaluator's outputs, the dead-letter
builder) and tests check that what they build validates.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import AwareDatetime, Field

from models.inputs import AccountInput, ContactInput, Contract, Id, Interaction, StaticEdit
from models.segments import MAX_SEGMENT_VERSION, SegmentDefinition, SegmentDelete

__all__ = [
    "AccountEnvelope",
    "BackfillBody",
    "BackfillEnvelope",
    "ContactEnvelope",
    "DeadLetter",
    "EvaluatorInput",
    "InteractionEnvelope",
    "MembershipSnapshot",
    "SegmentDeleteEnvelope",
    "SegmentEnvelope",
    "StaticEditEnvelope",
    "TickBody",
    "TickEnvelope",
]


class ContactEnvelope(Contract):
    """A contact upsert or erasure, on its contact's partition."""

    kind: Literal["contact"]
    body: ContactInput


class InteractionEnvelope(Contract):
    """An interaction, on its contact's partition."""

    kind: Literal["interaction"]
    body: Interaction


class StaticEditEnvelope(Contract):
    """A static edit, on its contact's partition."""

    kind: Literal["static_edit"]
    body: StaticEdit


class AccountEnvelope(Contract):
    """An account upsert or delete, broadcast to every partition."""

    kind: Literal["account"]
    body: AccountInput


class SegmentEnvelope(Contract):
    """A segment definition, broadcast to every partition."""

    kind: Literal["segment"]
    body: SegmentDefinition


class SegmentDeleteEnvelope(Contract):
    """A segment delete, broadcast to every partition."""

    kind: Literal["segment_delete"]
    body: SegmentDelete


class TickBody(Contract):
    at: AwareDatetime


class TickEnvelope(Contract):
    """Legacy: the former Faust evaluator's clock tick (its group leader's, to
    every partition). Nothing writes it now; the evaluator ignores it."""

    kind: Literal["tick"]
    body: TickBody


class ClockBody(Contract):
    to: AwareDatetime


class ClockEnvelope(Contract):
    """Clock advance (POST /clock/advance): every partition's event clock
    moves forward to ``to``, never back (docs/clock.md)."""

    kind: Literal["clock"]
    body: ClockBody


class BackfillBody(Contract):
    segment_id: Id
    version: int = Field(ge=0, le=MAX_SEGMENT_VERSION)  # 0: a delete's leaves


class BackfillEnvelope(Contract):
    """Legacy: a backfill's next chunk, sent by a partition of the former
    Faust evaluator to itself. Nothing writes it now; the evaluator ignores it."""

    kind: Literal["backfill"]
    body: BackfillBody


EvaluatorInput = Annotated[
    Union[
        ContactEnvelope, InteractionEnvelope, StaticEditEnvelope, AccountEnvelope,
        SegmentEnvelope, SegmentDeleteEnvelope, TickEnvelope, BackfillEnvelope,
        ClockEnvelope,
    ],
    Field(discriminator="kind"),
]


class MembershipSnapshot(Contract):
    """A current member; key ``"<segment_id>/<contact_id>"``. Written when
    the contact joins (``sequence`` is odd), replaced by a tombstone when it
    leaves, so the compacted topic read from the start is the membership."""

    segment_id: Id
    contact_id: Id
    member: Literal[True]
    since: AwareDatetime
    segment_version: int = Field(ge=1)
    sequence: int = Field(ge=1)


class DeadLetter(Contract):
    """An input that was not processed, and why. ``raw_base64`` holds the
    record's bytes when they are at most ``SEGMENTFLOW_DEAD_LETTER_MAX_BYTES``;
    larger ones are ``truncated`` (``preview`` has the first 512 bytes)."""

    source_topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    reason: str
    size: int = Field(ge=0)
    at: AwareDatetime
    preview: str
    raw_base64: str | None = None
    truncated: Literal[True] | None = None
