"""Input contracts: what upstream systems publish to segmentflow's topics.

Each topic carries one family, discriminated by ``op`` where a family has
several shapes. These models are exported as JSON Schema for publishers
(``schemas/``). Unknown fields are refused so that typos in upstream code
surface as dead-letters instead of silently ignored data.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import AwareDatetime, BaseModel, ConfigDict, Discriminator, Field, Tag

from models.event_types import EventTypeName, builtin_names
from models.ids import Id
from models.values import JsonObject, JsonValue

__all__ = [
    "EVENT_TYPES",
    "AccountDelete",
    "AccountInput",
    "AccountUpsert",
    "ConsentChange",
    "ContactDelete",
    "ContactInput",
    "ContactUpsert",
    "Interaction",
    "JsonObject",
    "JsonValue",
    "StaticEdit",
]

# JSON values an attribute or event property may hold: models/values.py
# (finite numbers, 64-bit integers, bounded strings, sizes and nesting).


# The built-in interaction types (models/event_types.default.json). Event
# types are data (models/event_types.py): ingest accepts the types declared
# on the event-types topic, these built-in ones for every name the topic does
# not declare, and dead-letters any other (a misspelt type never silently
# matches nothing). The model checks only the name's form.
EVENT_TYPES: tuple[str, ...] = builtin_names()
EventType = EventTypeName


class Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


CONSENT_CHANNEL_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
#: channels: email, sms, push, whatsapp, in_app, … (lower-case names)
ConsentChannel = Annotated[str, Field(pattern=CONSENT_CHANNEL_PATTERN)]
ConsentPurpose = Literal["commercial", "transactional"]


class ConsentChange(Contract):
    """Consent given or withdrawn for one channel, purpose and topic
    (docs/segments.md, "Consent"). ``topic`` absent: the whole channel for
    that purpose (an "unsubscribe from all e-mail" is a withdrawn
    channel-wide record). ``at``: when it was given or withdrawn (default:
    the upsert's ``updated_at``, else the evaluator's clock); the newest
    ``at`` per channel, purpose and topic wins, whatever order the records
    arrive in (equal times: the later record)."""

    channel: ConsentChannel
    purpose: ConsentPurpose = "commercial"
    topic: Id | None = None
    status: Literal["given", "withdrawn"]
    at: AwareDatetime | None = None


class ContactUpsert(Contract):
    """Create or update a contact.

    ``mode="merge"`` (default) overlays ``attributes`` on the stored ones and a
    ``null`` value removes that attribute; ``mode="replace"`` makes
    ``attributes`` the whole profile. ``account_id`` is left unchanged when
    absent and cleared when ``null`` (check ``model_fields_set``; producers
    must serialise with ``exclude_unset=True``).
    """

    op: Literal["upsert"] = "upsert"
    contact_id: Id
    attributes: JsonObject = Field(default_factory=dict)
    account_id: Id | None = Field(default=None)
    #: consent flags (the first form, kept working): ``{"email": true}`` reads
    #: as ``consent.email`` and as the channel-wide commercial consent of
    #: ``email`` while the contact has no record for it
    consent: dict[str, bool] = Field(default_factory=dict)
    #: consent per channel, purpose and topic, with its time (ConsentChange)
    consents: list[ConsentChange] = Field(default_factory=list, max_length=1000)
    mode: Literal["merge", "replace"] = "merge"
    updated_at: AwareDatetime | None = None


class ContactDelete(Contract):
    """Erase a contact: it leaves every segment and all its state is removed."""

    op: Literal["delete"] = "delete"
    contact_id: Id


def _op(value: Any) -> str:
    """``op`` selects the shape; upstream may omit it for an upsert."""
    if isinstance(value, dict):
        op = value.get("op", "upsert")
        return op if isinstance(op, str) else "upsert"
    return str(getattr(value, "op", "upsert"))


ContactInput = Annotated[
    Union[Annotated[ContactUpsert, Tag("upsert")], Annotated[ContactDelete, Tag("delete")]],
    Discriminator(
        _op, custom_error_type="invalid_op",
        custom_error_message="op must be 'upsert' (the default) or 'delete'",
    ),
]


class AccountUpsert(Contract):
    """Create or update an account (firmographics: ``account.industry``…)."""

    op: Literal["upsert"] = "upsert"
    account_id: Id
    attributes: JsonObject = Field(default_factory=dict)
    mode: Literal["merge", "replace"] = "merge"


class AccountDelete(Contract):
    op: Literal["delete"] = "delete"
    account_id: Id


AccountInput = Annotated[
    Union[Annotated[AccountUpsert, Tag("upsert")], Annotated[AccountDelete, Tag("delete")]],
    Discriminator(
        _op, custom_error_type="invalid_op",
        custom_error_message="op must be 'upsert' (the default) or 'delete'",
    ),
]


class Interaction(Contract):
    """Something a contact did. ``occurred_at`` (event time) decides where
    the event falls in time windows, whatever order it arrives in. ``type``
    must be a declared event type (docs/event-types.md); a type whose
    declaration names a datetime property as its time field may omit
    ``occurred_at`` upstream (ingest fills it in from that property)."""

    event_id: Id
    contact_id: Id
    type: EventType
    occurred_at: AwareDatetime
    properties: JsonObject = Field(default_factory=dict)


class StaticEdit(Contract):
    """Add a contact to, or remove it from, a segment's explicit list."""

    segment_id: Id
    contact_id: Id
    op: Literal["add", "remove"]
    at: AwareDatetime | None = None  # with a UTC offset, as every input time
