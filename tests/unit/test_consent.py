"""Consent inside segments (issue 16 item 3): records per channel, purpose
and topic with their time, ``consented to …`` conditions, cause ``consent``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import ContactState, explain
from models.changes import MembershipChange
from models.conditions import Consented, Negation
from models.formula import FormulaError, format_condition, parse_formula
from models.inputs import ConsentChange, ContactUpsert
from models.segments import SegmentDefinition
from tests.engine_helpers import Harness, catalog_of, seg, utc
from tests.naive import NaiveContact, naive_memberships

T0 = utc(2026, 3, 1, 12)


def _upsert(*records: dict[str, Any], **kw: Any) -> ContactUpsert:
    return ContactUpsert(contact_id="c1", consents=list(records), **kw)  # type: ignore[arg-type]


def _changes(changes: list[MembershipChange]) -> set[tuple[str, str, str, str | None]]:
    return {(c.segment_id, c.change, c.cause.kind, c.cause.ref) for c in changes}


# -- formula --------------------------------------------------------------------


@pytest.mark.parametrize(("text", "tree"), [
    ("consented to email", Consented(channel="email")),
    ('consented to email for "newsletter"', Consented(channel="email", topic="newsletter")),
    ('consented to transactional sms for "order-updates"',
     Consented(channel="sms", purpose="transactional", topic="order-updates")),
    ("not consented to push", Negation(arg=Consented(channel="push"))),
    ("consented to `commercial`", Consented(channel="commercial")),
])
def test_formula_round_trip(text: str, tree: Any) -> None:
    assert parse_formula(text) == tree
    assert format_condition(tree) == text
    d = SegmentDefinition(id="s", name="s", formula=text)
    assert SegmentDefinition.model_validate_json(d.model_dump_json()).condition == tree


def test_formula_layout_and_defaults() -> None:
    assert format_condition(parse_formula("CONSENTED  TO Commercial email")) == (
        "consented to email")
    # the words are keywords only after "consented": fields keep their names
    assert format_condition(parse_formula("consented = true and to = 1 and for = 2")) == (
        "consented = true and to = 1 and for = 2")


@pytest.mark.parametrize(("text", "column", "fragment"), [
    ("consented to Email", 1, "not a consent channel"),
    ('consented to email for "a b"', 24, "consent topic"),
    ("consented to", 13, "expected"),
    ("consented to email for", 23, "a string"),
    ("performed purchase where consented to email ever", 20, "where"),
])
def test_formula_refusals(text: str, column: int, fragment: str) -> None:
    with pytest.raises(FormulaError) as err:
        parse_formula(text)
    assert err.value.column == column and fragment in str(err.value), str(err.value)


# -- engine ----------------------------------------------------------------------

NEWS = seg("news", parse_formula('consented to email for "newsletter"'))
MAIL = seg("mail", parse_formula("consented to email"))
SMS = seg("orders-sms", parse_formula('consented to transactional sms for "order-updates"'))
NEWS_PARIS = seg("news-paris", parse_formula('in segment "news" and city = "Paris"'))
ADULTS = seg("adults", parse_formula("age >= 18"))


def test_withdrawal_leaves_every_segment_requiring_it_with_cause_consent() -> None:
    h = Harness(catalog_of(NEWS, MAIL, SMS, NEWS_PARIS, ADULTS))
    h(ContactUpsert(contact_id="c1", attributes={"city": "Paris", "age": 30}, consents=[
        ConsentChange(channel="email", status="given", at=T0),
        ConsentChange(channel="email", topic="newsletter", status="given", at=T0),
        ConsentChange(channel="sms", purpose="transactional", topic="order-updates",
                      status="given", at=T0)]), T0)
    assert h.members() == {"news", "mail", "orders-sms", "news-paris", "adults"}
    # "unsubscribe from all e-mail": one step, every e-mail segment, cause consent
    later = T0 + timedelta(days=1)
    ch = h(_upsert({"channel": "email", "status": "withdrawn", "at": later}), later)
    assert _changes(ch) == {
        ("news", "left", "consent", "email/commercial/"),
        ("mail", "left", "consent", "email/commercial/"),
        ("news-paris", "left", "segment_change", "news"),
    }
    assert h.members() == {"orders-sms", "adults"}
    # a topic given again after the channel-wide withdrawal counts
    again = later + timedelta(hours=1)
    ch = h(_upsert({"channel": "email", "topic": "newsletter", "status": "given", "at": again}),
           again)
    assert _changes(ch) == {("news", "joined", "consent", "email/commercial/newsletter"),
                            ("news-paris", "joined", "segment_change", "news")}
    # transactional consent is its own: a commercial withdrawal did not touch it
    ch = h(_upsert({"channel": "sms", "purpose": "transactional", "topic": "order-updates",
                    "status": "withdrawn"}), again)
    assert _changes(ch) == {("orders-sms", "left", "consent",
                             "sms/transactional/order-updates")}


def test_newest_time_wins_whatever_the_arrival_order() -> None:
    h = Harness(catalog_of(NEWS))
    h(_upsert({"channel": "email", "topic": "newsletter", "status": "given",
               "at": T0 + timedelta(days=2)}), T0)
    assert h.members() == {"news"}
    # an older withdrawal arriving late changes nothing
    assert h(_upsert({"channel": "email", "topic": "newsletter", "status": "withdrawn",
                      "at": T0 + timedelta(days=1)}), T0) == []
    assert h.members() == {"news"}
    # without "at": the upsert's updated_at, else the evaluator's clock
    ch = h(_upsert({"channel": "email", "topic": "newsletter", "status": "withdrawn"},
                   updated_at=T0 + timedelta(days=3)), T0)
    assert h.left(ch) == {"news"}
    assert h.state is not None
    assert h.state.consent["email/commercial/newsletter"] == [
        False, int((T0 + timedelta(days=3)).timestamp() * 1_000_000)]


def test_mixed_upsert_gives_consent_segments_cause_consent() -> None:
    h = Harness(catalog_of(MAIL, ADULTS))
    ch = h(ContactUpsert(contact_id="c1", attributes={"age": 40},
                         consents=[ConsentChange(channel="email", status="given")]), T0)
    assert _changes(ch) == {("adults", "joined", "contact_update", None),
                            ("mail", "joined", "consent", "email/commercial/")}


def test_first_form_flags_keep_working() -> None:
    """``consent: {"email": true}`` still reads as ``consent.email`` and is the
    channel-wide commercial consent while no record exists; a record, once
    there, decides; a flag set to false blocks every topic of the channel."""
    legacy = seg("legacy", parse_formula("consent.email = true"))
    h = Harness(catalog_of(MAIL, NEWS, legacy))
    ch = h(ContactUpsert(contact_id="c1", consent={"email": True}), T0)
    assert _changes(ch) == {("mail", "joined", "consent", "email"),
                            ("legacy", "joined", "consent", "email")}
    h(_upsert({"channel": "email", "topic": "newsletter", "status": "given"}), T0)
    assert h.members() == {"mail", "legacy", "news"}
    ch = h(ContactUpsert(contact_id="c1", consent={"email": False}), T0)
    assert h.left(ch) == {"mail", "legacy", "news"}
    # a channel-wide record now decides for "consented to email"
    h(_upsert({"channel": "email", "status": "given", "at": T0}), T0)
    assert h.members() == {"mail", "news"}
    # replace mode replaces the flags, never the records (consent history)
    h(ContactUpsert(contact_id="c1", mode="replace", attributes={"age": 1}), T0)
    assert h.state is not None and "email" not in h.state.consent
    assert h.members() == {"mail", "news"}
    assert ContactState.from_bytes(h.state.to_bytes()) == h.state


def test_explain_shows_records_and_times() -> None:
    h = Harness(catalog_of(NEWS))
    h(_upsert({"channel": "email", "topic": "newsletter", "status": "given", "at": T0},
              {"channel": "email", "status": "withdrawn", "at": T0 + timedelta(days=1)}), T0)
    text = str(explain(h.state, "news", h.catalog, T0, {}))
    assert '[false] consented to email for "newsletter"' in text
    assert 'topic "newsletter": given (2026-03-01T12:00:00+00:00)' in text
    assert "whole channel: withdrawn (2026-03-02T12:00:00+00:00)" in text


# -- engine against the naive reference, consent only ------------------------------

CONSENT_DEFS = [
    seg(f"s{i}", Consented(channel=ch, purpose=p, topic=t))  # type: ignore[arg-type]
    for i, (ch, p, t) in enumerate(
        (ch, p, t) for ch in ("email", "sms") for p in ("commercial", "transactional")
        for t in (None, "newsletter", "offers"))
]


@st.composite
def consent_upserts(draw: st.DrawFn) -> ContactUpsert:
    kw: dict[str, Any] = {}
    if draw(st.integers(0, 3)) == 0:
        kw["consent"] = draw(st.dictionaries(st.sampled_from(["email", "sms"]), st.booleans(),
                                             max_size=2))
    if draw(st.integers(0, 4)) == 0:
        kw["mode"] = "replace"
    if draw(st.booleans()):
        kw["updated_at"] = T0 + timedelta(hours=draw(st.integers(0, 10)))
    kw["consents"] = draw(st.lists(st.builds(
        ConsentChange, channel=st.sampled_from(["email", "sms"]),
        purpose=st.sampled_from(["commercial", "transactional"]),
        topic=st.sampled_from([None, "newsletter", "offers"]),
        status=st.sampled_from(["given", "withdrawn"]),
        at=st.one_of(st.none(), st.integers(0, 10).map(lambda h: T0 + timedelta(hours=h)))),
        max_size=4))
    return ContactUpsert(contact_id="c1", **kw)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(consent_upserts(), st.integers(0, 10)), min_size=1, max_size=12))
def test_consent_engine_equals_naive(steps: list[tuple[ContactUpsert, int]]) -> None:
    """Every channel x purpose x topic condition, after every upsert of
    flags and records (late ones, timeless ones, replace mode): the engine's
    memberships equal tests/naive.py's, and its changes are the difference,
    every one with cause consent."""
    h = Harness(catalog_of(*CONSENT_DEFS))
    naive = NaiveContact("c1")
    before = {d.id: False for d in CONSENT_DEFS}
    for inp, hours in steps:
        now = T0 + timedelta(hours=hours)
        ch = h(inp, now)
        naive.upsert_consent(inp, now)
        expected = naive_memberships(CONSENT_DEFS, naive, {}, now)
        assert {d.id: d.id in h.members() for d in CONSENT_DEFS} == expected
        assert {(c.segment_id, c.change) for c in ch} == {
            (s, "joined" if v else "left") for s, v in expected.items() if before[s] != v}
        assert all(c.cause.kind == "consent" for c in ch)
        before = expected
