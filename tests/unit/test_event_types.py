"""Event types are data (issue #13 item 4): declarations (models/event_types.py),
the registry built from the built-in ones and the event-types topic, the
check at ingest (agents/event_types.InteractionGate and agents/ingest), and
the API's checks of declarations and of formulas that name event types."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import ValidationError

import agents.ingest as ingest
from agents.event_types import EventTypeFeed, EventTypeProblem, InteractionGate, decode_record
from app.api.errors import ApiError
from app.api.event_types import EventTypeWriter
from app.api.writes import DefinitionWriter
from app.metrics import dead_letter_reason
from models.event_types import (
    EventTypeDeclaration,
    EventTypeRegistry,
    builtin_declarations,
)
from models.inputs import EVENT_TYPES
from models.segments import SegmentDefinition
from tests.unit.test_definition_pending import Reads, Topic
from tests.unit.test_ingest_batches import PREFIX, Rig, event

PAGE_VIEWED = {
    "name": "page_viewed", "description": "a page of the web site",
    "properties": {"url": {"type": "string", "required": True},
                   "seconds": {"type": "number"},
                   "viewed_at": {"type": "datetime"}},
}


def declared(**changes: Any) -> EventTypeDeclaration:
    return EventTypeDeclaration.model_validate({**PAGE_VIEWED, **changes})


def interaction(kind: str = "page_viewed", **fields: Any) -> bytes:
    doc = {"event_id": "e1", "contact_id": "c1", "type": kind,
           "occurred_at": "2026-01-01T00:00:00Z", "properties": {"url": "/pricing"}}
    doc.update(fields)
    return orjson.dumps({k: v for k, v in doc.items() if v is not None})


def registry(*declarations: EventTypeDeclaration) -> EventTypeRegistry:
    found = EventTypeRegistry()
    for d in declarations:
        found = found.with_record(d.name, d)
    return found


# -- declarations and the registry ------------------------------------------------------


def test_the_built_in_types_are_the_default_declarations() -> None:
    defaults = builtin_declarations()
    assert tuple(defaults) == EVENT_TYPES
    assert "purchase" in defaults and "return" in defaults and len(defaults) == 14
    assert all(d.version == 1 and not d.properties and d.additional_properties
               and d.time_field == "occurred_at" for d in defaults.values())
    reg = EventTypeRegistry()
    assert reg.names() == sorted(EVENT_TYPES)
    assert reg.source("purchase") == "default" and reg.source("page_viewed") == "undeclared"


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"name": "page viewed"}, "name"),
    ({"name": "x" * 65}, "name"),
    ({"version": 0}, "version"),
    ({"time_field": "viewed_at"}, "time_field"),
    ({"time_field": "properties.url"}, "declared with type datetime"),
    ({"time_field": "properties.missing"}, "time_field"),
    ({"properties": {"a-b": {"type": "string"}}}, "property name"),
    ({"properties": {"a": {"type": "text"}}}, "properties.a.type"),
    ({"colour": "red"}, "colour"),
])
def test_a_bad_declaration_is_refused_naming_the_field(changes: dict[str, Any],
                                                       fragment: str) -> None:
    with pytest.raises(ValidationError) as refused:
        declared(**changes)
    text = str(refused.value)
    assert fragment in text or fragment.replace(".", "\n  ") in text, text


def test_versions_move_forward_and_a_tombstone_brings_the_default_back() -> None:
    reg = registry(declared())
    assert reg.source("page_viewed") == "declared" and reg.next_version("page_viewed") == 2
    v2 = declared(version=2, additional_properties=False)
    reg = reg.with_record("page_viewed", v2)
    assert reg.get("page_viewed") == v2
    assert reg.with_record("page_viewed", declared(version=1)) is reg  # stale: ignored
    purchase = EventTypeDeclaration(name="purchase", version=2, properties={
        "amount": {"type": "number", "required": True}})  # type: ignore[dict-item]
    reg = reg.with_record("purchase", purchase)
    assert reg.get("purchase") == purchase and reg.source("purchase") == "declared"
    reg = reg.with_record("purchase", None)
    assert reg.get("purchase") == builtin_declarations()["purchase"]
    assert reg.source("purchase") == "default"
    retired = reg.with_record("return", EventTypeDeclaration(name="return", version=2,
                                                             retired=True))
    assert not retired.accepts("return") and "return" not in retired.names()
    assert 'event type "return" is retired (version 2)' in retired.undeclared_reason("return")


def test_the_undeclared_reason_names_the_type_and_how_to_declare_it() -> None:
    reason = EventTypeRegistry().undeclared_reason("telepathy", "p.event-types")
    assert reason.startswith('undeclared event type "telepathy" (declared: email_bounced, ')
    for how in ("PUT /event-types/telepathy", "segmentflow event-types apply -f FILE",
                "p.event-types", "SEGMENTFLOW_ACCEPT_UNDECLARED_EVENT_TYPES=true"):
        assert how in reason
    assert dead_letter_reason(reason) == "event_type"


@pytest.mark.parametrize(("properties", "problem"), [
    ({"url": "/a", "seconds": 1.5, "viewed_at": "2026-01-01T00:00:00+02:00"}, None),
    ({"url": "/a", "seconds": None}, None),  # null counts as absent
    ({"seconds": 3}, "property 'url' is required"),
    ({"url": 5}, "property 'url' must be a string, not 5"),
    ({"url": "/a", "seconds": "3"}, "property 'seconds' must be a number, not \"3\""),
    ({"url": "/a", "seconds": True}, "property 'seconds' must be a number, not true"),
    ({"url": "/a", "viewed_at": "2026-01-01T00:00:00"}, "property 'viewed_at' must be a "
     "date-time with a time zone"),
])
def test_properties_are_checked_against_their_declared_types(properties: dict[str, Any],
                                                             problem: str | None) -> None:
    found = registry(declared()).property_problem("page_viewed", properties)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith('event type "page_viewed" (version 1): ')
        assert problem in found
        assert dead_letter_reason(found) == "event_type"


def test_every_property_type() -> None:
    kinds = {"s": "string", "n": "number", "i": "integer", "b": "boolean", "t": "datetime",
             "d": "date", "o": "object", "a": "array", "x": "any"}
    decl = EventTypeDeclaration(name="all", properties={
        k: {"type": v} for k, v in kinds.items()})  # type: ignore[misc]
    reg = registry(decl)
    good = {"s": "x", "n": 1, "i": 2, "b": False, "t": "2026-01-01T00:00:00Z",
            "d": "2026-01-31", "o": {}, "a": [], "x": [1]}
    assert reg.property_problem("all", good) is None
    for key, bad in {"i": 2.0, "b": 0, "d": "2026-01-31T00:00:00Z", "o": [], "a": {},
                     "n": "1", "t": "yesterday"}.items():
        assert f"property '{key}'" in (reg.property_problem("all", {**good, key: bad}) or "")


def test_no_other_properties_when_additional_properties_is_false() -> None:
    reg = registry(declared(additional_properties=False))
    problem = reg.property_problem("page_viewed", {"url": "/a", "referer": "x"})
    assert problem is not None and "property 'referer' is not declared" in problem


# -- the topic's records -----------------------------------------------------------------


def test_records_of_the_topic() -> None:
    value = orjson.dumps(declared().model_dump(mode="json"))
    assert decode_record(b"page_viewed", value) == ("page_viewed", declared())
    assert decode_record(b"page_viewed", None) == ("page_viewed", None)
    assert "differs" in decode_record(b"other", value)  # type: ignore[operator]
    assert "not an event type declaration" in decode_record(b"x", b"{")  # type: ignore[operator]
    feed = EventTypeFeed.fixed()
    feed.apply(0, b"page_viewed", value)
    feed.apply(1, b"junk", b"[]")  # logged and ignored
    assert feed.registry.accepts("page_viewed")
    feed.apply(2, b"page_viewed", None)
    assert not feed.registry.accepts("page_viewed")


# -- ingest ------------------------------------------------------------------------------


def gate(*declarations: EventTypeDeclaration, accept: bool = False) -> InteractionGate:
    return InteractionGate(EventTypeFeed.fixed(registry(*declarations)), accept)


def test_the_gate_forwards_declared_types_unchanged() -> None:
    raw = interaction()
    model, out = gate(declared()).decode(raw)
    assert out is raw and model.type == "page_viewed"
    raw = interaction("purchase", properties={"amount": "any"})  # built-in: any properties
    assert gate().decode(raw)[1] is raw


def test_the_gate_refuses_undeclared_types_unless_told_to_accept_them() -> None:
    with pytest.raises(EventTypeProblem, match='undeclared event type "page_viewed"'):
        gate().decode(interaction())
    raw = interaction()
    assert gate(accept=True).decode(raw)[1] is raw
    # declared types are still checked when undeclared ones are accepted
    with pytest.raises(EventTypeProblem, match="property 'url' must be a string"):
        gate(declared(), accept=True).decode(interaction(properties={"url": 1}))
    with pytest.raises(ValidationError):  # the form of the name: pydantic, as before
        gate().decode(interaction("tele pathy"))


def test_a_declared_time_property_gives_the_event_time() -> None:
    g = gate(declared(time_field="properties.viewed_at"))
    props = {"url": "/a", "viewed_at": "2026-03-01T10:00:00+01:00"}
    model, out = g.decode(interaction(properties=props, occurred_at=None))
    assert model.occurred_at.isoformat() == "2026-03-01T10:00:00+01:00"
    assert orjson.loads(out)["occurred_at"] == "2026-03-01T10:00:00+01:00"
    # both given: the declared field wins
    model, out = g.decode(interaction(properties=props))
    assert model.occurred_at.isoformat() == "2026-03-01T10:00:00+01:00"
    # the same instant: forwarded unchanged
    raw = interaction(properties=props, occurred_at="2026-03-01T09:00:00Z")
    assert g.decode(raw)[1] is raw
    raw = interaction()  # no time property: occurred_at stands
    assert g.decode(raw)[1] is raw
    with pytest.raises(EventTypeProblem, match="property 'viewed_at' is required: it is the "
                                               "type's time field"):
        g.decode(interaction(occurred_at=None))
    with pytest.raises(ValidationError, match="occurred_at"):  # no declared time property
        gate(declared()).decode(interaction(occurred_at=None))


class CatchingUpFeed(EventTypeFeed):
    """A feed whose topic holds ``pending`` records it has not read yet: a
    catch-up reads them."""

    def __init__(self, pending: list[EventTypeDeclaration]) -> None:
        super().__init__("", f"{PREFIX}.event-types")
        self._loaded.set()
        self.pending, self.catch_ups = pending, 0

    async def catch_up(self, timeout: float = 5.0) -> bool:
        self.catch_ups += 1
        for d in self.pending:
            self.apply(0, d.name.encode(), orjson.dumps(d.model_dump(mode="json")))
        self.pending = []
        return True


async def test_ingest_dead_letters_undeclared_types_and_reads_new_declarations_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    feed = CatchingUpFeed([declared()])
    real = ingest.register_ingest
    monkeypatch.setattr(ingest, "register_ingest",
                        lambda *a, **k: real(*a, **k, event_types=feed))
    rig = Rig(monkeypatch)
    topic = f"{PREFIX}.interactions"
    await rig.run([event(interaction("purchase"), 0, topic),
                   event(interaction(), 1, topic),  # declared: the topic has it, unread
                   event(interaction("telepathy"), 2, topic),
                   event(interaction(properties={"url": ["x"]}), 3, topic),
                   event(interaction("purchase", event_id="e2"), 4, topic)],
                  "ingest-interactions")
    assert feed.catch_ups == 1  # once per batch
    assert sorted(rig.forwarded()) == [0, 1, 4]
    letters = rig.dead_letters()
    assert sorted(letters) == [2, 3]
    assert letters[2].startswith('undeclared event type "telepathy" (declared: ')
    assert "page_viewed" in letters[2] and "PUT /event-types/telepathy" in letters[2]
    assert letters[3] == ('event type "page_viewed" (version 1): property \'url\' must be '
                          'a string, not ["x"]')
    assert rig.metrics.dead_letters.labels("event_type")._value.get() == 2


# -- the API -----------------------------------------------------------------------------


def definition_writer(*declarations: EventTypeDeclaration, accept: bool = False
                      ) -> DefinitionWriter:
    topics: Any = type("Topics", (), {"segment_definitions": Topic()})()
    return DefinitionWriter(Reads(), topics, work=None,  # type: ignore[arg-type]
                            event_types=EventTypeFeed.fixed(registry(*declarations)),
                            accept_undeclared_event_types=accept)


def segment(formula: str) -> SegmentDefinition:
    return SegmentDefinition(id="s", name="s", status="live", formula=formula)


async def test_a_formula_naming_an_undeclared_type_is_refused_at_its_position() -> None:
    writer = definition_writer()
    formula = 'country = "FR"\n  and performed page_viewed where url = "/pricing" ever'
    with pytest.raises(ApiError) as refused:
        await writer.put(segment(formula))
    error = refused.value
    assert error.status == 422 and error.code == "undeclared_event_type"
    assert error.message.startswith('segment refused: formula line 2, column 17: undeclared '
                                    'event type "page_viewed" (declared: ')
    assert error.details[0]["loc"] == "formula"
    assert error.details[0]["message"].startswith("line 2, column 17: ")
    await definition_writer(declared()).put(segment(formula))  # declared: accepted
    await definition_writer(accept=True).put(segment(formula))  # accepted anyway
    await writer.put(segment("performed purchase ever"))  # built-in


def test_declarations_through_the_api_get_the_next_version() -> None:
    feed = EventTypeFeed.fixed(registry(declared()))
    writer = EventTypeWriter(feed, Topic())
    assert writer.build("page_viewed", {**PAGE_VIEWED}).version == 2
    assert writer.build("purchase", {}).version == 2  # replaces the built-in one
    assert writer.build("brand_new", {}).version == 1
    with pytest.raises(ApiError) as refused:
        writer.build("page_viewed", {**PAGE_VIEWED, "version": 5})
    assert refused.value.status == 409 and "is version 2" in refused.value.message
    with pytest.raises(ApiError) as refused:
        writer.build("page_viewed", {**PAGE_VIEWED, "name": "other"})
    assert refused.value.status == 422
    with pytest.raises(ApiError) as refused:
        writer.build("x", {"properties": {"a": {"type": "text"}}})
    assert refused.value.status == 422 and "properties.a.type" in refused.value.message


async def test_declaring_the_same_again_changes_nothing() -> None:
    feed = CatchingUpFeed([])
    topic = Topic()
    writer = EventTypeWriter(feed, topic)
    decl, produced = await writer.put("page_viewed", dict(PAGE_VIEWED))
    assert produced and decl.version == 1 and len(topic.sent) == 1
    feed.apply(0, topic.sent[0][0], topic.sent[0][1])
    again, produced = await writer.put("page_viewed", {**PAGE_VIEWED, "version": 1})
    assert not produced and again.version == 1 and len(topic.sent) == 1
    changed, produced = await writer.put("page_viewed", {**PAGE_VIEWED, "description": "new"})
    assert produced and changed.version == 2


def test_malformed_json_keeps_pydantic_s_reason() -> None:
    """What orjson cannot read (NaN, 1e400, a syntax error) is refused with
    pydantic's reason, as before event types (the fuzz test caught it)."""
    for text in (b"NaN", b"1e400", b"-"):
        raw = interaction("purchase").replace(b'"/pricing"', text)
        with pytest.raises(ValidationError):
            gate().decode(raw)


async def test_retired_types_are_refused_even_when_undeclared_ones_are_accepted() -> None:
    retired = EventTypeDeclaration(name="return", version=2, retired=True)
    writer = definition_writer(retired, accept=True)
    with pytest.raises(ApiError) as refused:
        await writer.put(segment("performed return ever"))
    assert 'event type "return" is retired (version 2)' in refused.value.message
    await writer.put(segment("performed anything_at_all ever"))
    with pytest.raises(EventTypeProblem, match="is retired"):
        gate(retired, accept=True).decode(interaction("return"))


async def test_a_worker_that_has_not_read_the_event_types_yet_asks_to_retry(
        monkeypatch: pytest.MonkeyPatch) -> None:
    feed = EventTypeFeed("unused:1", "t.event-types")  # never started: not loaded
    assert not await feed.wait_loaded(0.01)
    monkeypatch.setattr("app.api.event_types.LOAD_WAIT", 0.01)
    with pytest.raises(ApiError) as refused:
        await EventTypeWriter(feed, Topic()).put("page_viewed", dict(PAGE_VIEWED))
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "1"}
    topics: Any = type("Topics", (), {"segment_definitions": Topic()})()
    writer = DefinitionWriter(Reads(), topics, work=None,  # type: ignore[arg-type]
                              event_types=feed)
    writer.load_wait = 0.01
    await writer.put(segment("performed purchase ever"))  # built-in: no need to wait
    with pytest.raises(ApiError) as refused:
        await writer.put(segment("performed page_viewed ever"))
    assert refused.value.status == 503
