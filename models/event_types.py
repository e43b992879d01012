"""Event types as data: declarations of the interaction types ingest accepts.

An operator declares each event type (``EventTypeDeclaration``): its name,
its properties and their types, the field that gives an interaction its
time, and a version. Declarations travel on the compacted
``<prefix>.event-types`` topic (key: the type's name), so every worker's
ingest holds the same ``EventTypeRegistry``; the API
(``PUT /event-types/{name}``) and the CLI (``segmentflow event-types
apply``) write there. The built-in types ship as data
(``models/event_types.default.json``) and are in force for every name the
topic holds no declaration of. docs/event-types.md has the whole contract.

At ingest (``agents/ingest.py``) an interaction whose type is not declared
(or retired) is dead-lettered with a reason that names the type and says
how to declare it, unless ``SEGMENTFLOW_ACCEPT_UNDECLARED_EVENT_TYPES`` is
on; properties that violate their declared types are dead-lettered naming
the property.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)
from pydantic import ValidationError as _ValidationError

__all__ = [
    "DEFAULTS_RESOURCE",
    "EVENT_TYPE_NAME_PATTERN",
    "PROPERTY_TYPES",
    "EventTypeDeclaration",
    "EventTypeName",
    "EventTypeRegistry",
    "PropertySpec",
    "builtin_declarations",
    "builtin_names",
    "declaration_help",
    "is_event_type_name",
]

# A type's name is a formula name without backticks (``performed page_viewed
# ever``): a letter or underscore, then letters, digits and underscores.
EVENT_TYPE_NAME_MAX = 64
EVENT_TYPE_NAME_PATTERN = rf"^[A-Za-z_][A-Za-z0-9_]{{0,{EVENT_TYPE_NAME_MAX - 1}}}$"
_NAME = re.compile(EVENT_TYPE_NAME_PATTERN)
_PROPERTY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

EventTypeName = Annotated[str, StringConstraints(pattern=EVENT_TYPE_NAME_PATTERN)]

PROPERTY_TYPES: tuple[str, ...] = (
    "string", "number", "integer", "boolean", "datetime", "date", "object", "array", "any",
)
PropertyType = Literal[PROPERTY_TYPES]  # type: ignore[valid-type]

DEFAULTS_RESOURCE = "event_types.default.json"


def is_event_type_name(value: object) -> bool:
    return isinstance(value, str) and _NAME.match(value) is not None


class PropertySpec(BaseModel):
    """One declared property: its type, and whether every event must carry it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: PropertyType = Field(description=(
        "string, number (integer or decimal), integer, boolean, datetime (ISO 8601 with "
        "a time zone), date (YYYY-MM-DD), object, array, or any"))
    required: bool = Field(default=False, description="every event of this type carries it")
    description: str | None = Field(default=None, max_length=1000)


class EventTypeDeclaration(BaseModel):
    """An event type: what an interaction of this ``type`` carries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: EventTypeName = Field(description=(
        "the interaction's type; a formula name (letters, digits, _; at most 64)"))
    version: int = Field(default=1, ge=1, description=(
        "each change is a new version (the API sets it: the version in force plus one)"))
    description: str | None = Field(default=None, max_length=1000)
    properties: dict[str, PropertySpec] = Field(default_factory=dict, max_length=500)
    additional_properties: bool = Field(default=True, description=(
        "false: a property not declared here is refused"))
    time_field: str = Field(default="occurred_at", description=(
        "where an interaction's event time comes from: occurred_at (default), or "
        "properties.<name> of a declared datetime property: when an interaction carries "
        "it, it gives the time (occurred_at may then be omitted; given too, it is "
        "overridden); when not, occurred_at does"))
    cloudevents_types: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] = (
        Field(default_factory=list, max_length=20, description=(
            "CloudEvents types (e.g. com.example.page.viewed) that are this event type on the "
            "interactions topic (docs/cloudevents.md)")))
    retired: bool = Field(default=False, description=(
        "true: interactions of this type are refused again (a built-in type can be retired)"))
    updated_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _check(self) -> EventTypeDeclaration:
        for prop in self.properties:
            if not _PROPERTY_NAME.match(prop):
                raise ValueError(f"property name {prop[:80]!r} must be letters, digits and _ "
                                 "(starting with a letter or _; at most 128)")
        if self.time_field != "occurred_at":
            head, _, prop = self.time_field.partition(".")
            spec = self.properties.get(prop) if head == "properties" else None
            if spec is None or spec.type != "datetime":
                raise ValueError(
                    f"time_field {self.time_field[:80]!r} must be occurred_at or "
                    "properties.<name> of a property declared with type datetime")
        return self

    @property
    def time_property(self) -> str | None:
        """The property that gives the event time, or None (occurred_at)."""
        if self.time_field == "occurred_at":
            return None
        return self.time_field.partition(".")[2]

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


_DATETIME = TypeAdapter(AwareDatetime)


def _type_problem(kind: str, value: Any) -> str | None:
    """Why ``value`` (parsed JSON) is not of the declared ``kind``, or None."""
    t = type(value)
    if kind == "any":
        return None
    if kind == "string":
        return None if t is str else "a string"
    if kind == "number":
        return None if t in (int, float) else "a number"
    if kind == "integer":
        return None if t is int else "an integer"
    if kind == "boolean":
        return None if t is bool else "true or false"
    if kind == "object":
        return None if t is dict else "an object"
    if kind == "array":
        return None if t is list else "an array"
    if kind == "datetime":
        if t is str:
            try:
                _DATETIME.validate_python(value)
                return None
            except _ValidationError:
                pass
        return "a date-time with a time zone (ISO 8601, e.g. 2026-01-01T09:30:00Z)"
    if kind == "date":
        if t is str:
            try:
                date.fromisoformat(value)
                return None if len(value) == 10 else "a date (YYYY-MM-DD)"
            except ValueError:
                pass
        return "a date (YYYY-MM-DD)"
    return f"of type {kind}"  # not reachable: PropertySpec.type is checked


def _describe(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, datetime) else str(value)
    return text if len(text) <= 60 else text[:60] + "…"


def declaration_help(name: str, topic: str | None = None) -> str:
    """How to declare ``name`` (the end of an undeclared-type reason)."""
    where = f" or a record on {topic}" if topic else ""
    return (f"declare it (PUT /event-types/{name}, `segmentflow event-types apply -f FILE`"
            f"{where}; docs/event-types.md) or set "
            "SEGMENTFLOW_ACCEPT_UNDECLARED_EVENT_TYPES=true")


class EventTypeRegistry:
    """The declarations in force: the built-in ones, each replaced by the
    topic's declaration of the same name, plus the topic's other names.
    Immutable: ``with_record`` returns a new registry."""

    __slots__ = ("_cloudevents", "_declared", "_defaults", "_in_force")

    def __init__(self, defaults: Mapping[str, EventTypeDeclaration] | None = None,
                 declared: Mapping[str, EventTypeDeclaration] | None = None) -> None:
        self._defaults = dict(builtin_declarations() if defaults is None else defaults)
        self._declared = dict(declared or {})
        self._in_force = {**self._defaults, **self._declared}
        # CloudEvents type -> event type (the first name in order when two list it)
        self._cloudevents: dict[str, str] = {}
        for name in sorted(self._in_force):
            for ce_type in self._in_force[name].cloudevents_types:
                self._cloudevents.setdefault(ce_type, name)

    # -- reading -----------------------------------------------------------------------

    def get(self, name: str) -> EventTypeDeclaration | None:
        """The declaration in force for ``name`` (retired ones included)."""
        return self._in_force.get(name)

    def for_cloudevents_type(self, ce_type: str) -> str | None:
        """The event type a CloudEvents ``type`` stands for: the declaration
        that lists it, else the CloudEvents type itself when it is an event
        type name; None otherwise."""
        found = self._cloudevents.get(ce_type)
        if found is not None:
            return found
        return ce_type if is_event_type_name(ce_type) else None

    def cloudevents_owner(self, ce_type: str) -> str | None:
        """The event type whose declaration lists ``ce_type``, if any."""
        return self._cloudevents.get(ce_type)

    def accepts(self, name: str) -> bool:
        found = self._in_force.get(name)
        return found is not None and not found.retired

    def names(self) -> list[str]:
        """Names whose interactions are accepted (not retired), sorted."""
        return sorted(n for n, d in self._in_force.items() if not d.retired)

    def source(self, name: str) -> str:
        """``declared`` (from the topic), ``default`` (built-in) or ``undeclared``."""
        if name in self._declared:
            return "declared"
        return "default" if name in self._defaults else "undeclared"

    def all(self) -> list[EventTypeDeclaration]:
        return [self._in_force[n] for n in sorted(self._in_force)]

    def next_version(self, name: str) -> int:
        found = self._in_force.get(name)
        return found.version + 1 if found is not None else 1

    # -- changing ----------------------------------------------------------------------

    def with_record(self, name: str, declaration: EventTypeDeclaration | None
                    ) -> EventTypeRegistry:
        """The registry after a topic record: a declaration (ignored when it
        is not newer than the topic's declaration held for that name), or
        ``None`` (a tombstone: the built-in declaration, if any, is in force
        again)."""
        declared = dict(self._declared)
        if declaration is None:
            declared.pop(name, None)
        else:
            held = declared.get(name)
            if held is not None and held.version >= declaration.version:
                return self
            declared[name] = declaration
        return EventTypeRegistry(self._defaults, declared)

    # -- checking interactions -----------------------------------------------------------

    def undeclared_reason(self, name: str, topic: str | None = None) -> str:
        found = self._in_force.get(name)
        shown = name if len(name) <= 80 else name[:80] + "…"
        if found is not None and found.retired:
            return (f"event type \"{shown}\" is retired (version {found.version}); "
                    f"{declaration_help(shown, topic)}")
        names = self.names()
        listed = ", ".join(names[:20]) + (f", … ({len(names)} in all)" if len(names) > 20 else "")
        return (f"undeclared event type \"{shown}\" (declared: {listed or 'none'}); "
                f"{declaration_help(shown, topic)}")

    def property_problem(self, name: str, properties: Mapping[str, Any]) -> str | None:
        """Why ``properties`` violate the declaration of ``name`` (naming
        the property), or None. ``null`` counts as absent."""
        decl = self._in_force.get(name)
        if decl is None or (not decl.properties and decl.additional_properties):
            return None  # the hot path: nothing declared to check
        head = f'event type "{name}" (version {decl.version}): property'
        for prop, spec in decl.properties.items():
            value = properties.get(prop)
            if value is None:
                if spec.required:
                    return f"{head} {prop!r} is required"
                continue
            wanted = _type_problem(spec.type, value)
            if wanted is not None:
                return f"{head} {prop!r} must be {wanted}, not {_describe(value)}"
        if not decl.additional_properties:
            extra = sorted(p for p in properties if p not in decl.properties)
            if extra:
                return (f"{head} {extra[0][:80]!r} is not declared, and no other properties "
                        f"are allowed (declared: {', '.join(sorted(decl.properties)) or 'none'})")
        return None


def _load_defaults(text: str) -> dict[str, EventTypeDeclaration]:
    items = json.loads(text)
    found: dict[str, EventTypeDeclaration] = {}
    for item in items["event_types"]:
        decl = EventTypeDeclaration.model_validate(item)
        if decl.name in found:
            raise ValueError(f"{DEFAULTS_RESOURCE}: {decl.name} declared twice")
        found[decl.name] = decl
    return found


@cache
def builtin_declarations() -> dict[str, EventTypeDeclaration]:
    """The built-in event types (``models/event_types.default.json``)."""
    text = resources.files("models").joinpath(DEFAULTS_RESOURCE).read_text("utf-8")
    return _load_defaults(text)


def builtin_names() -> tuple[str, ...]:
    return tuple(builtin_declarations())


