"""One definition of a valid value, enforced at ingest (issue #11, "Safety"):
what ingest accepts, the engine can evaluate, store and encode; what it
cannot is dead-lettered with a reason naming the field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from agents.dead_letters import describe_error
from agents.ingest import _adapter
from engine import ContactState
from engine.apply import apply
from engine.values import FLOAT_MAX, INT_MAX
from models.conditions import AggregateCondition, EverWindow
from models.inputs import AccountInput, ContactInput, Interaction, StaticEdit
from models.segments import MAX_SEGMENT_VERSION, SegmentDefinition
from models.values import INT_MIN, MAX_DEPTH, MAX_ITEMS, MAX_KEY_LENGTH, MAX_STRING_LENGTH
from tests.engine_helpers import Harness, catalog_of, interaction, seg, utc

T0 = utc(2026, 5, 1, 12)


def refusal(model: Any, raw: bytes) -> str:
    """The dead-letter reason ingest gives for ``raw`` (same decoder)."""
    with pytest.raises(ValidationError) as err:
        _adapter(model)(raw)
    return describe_error(err.value)


def contact(attributes: bytes) -> bytes:
    return b'{"contact_id": "c1", "attributes": {"a": 1, "score": ' + attributes + b"}}"


# --- numbers -----------------------------------------------------------------


@pytest.mark.parametrize("text, shown", [
    (b"NaN", "NaN"), (b"Infinity", "Infinity"), (b"-Infinity", "-Infinity"),
    (b"1e400", "Infinity"), (b"-1e400", "-Infinity"),
])
def test_non_finite_attribute_is_refused_naming_the_field(text: bytes, shown: str) -> None:
    reason = refusal(ContactInput, contact(text))
    assert "attributes.score: " + shown in reason, reason
    assert "numbers must be finite" in reason


def test_non_finite_value_deep_inside_is_refused_with_its_path() -> None:
    raw = (b'{"event_id": "e1", "contact_id": "c1", "type": "purchase", '
           b'"occurred_at": "2026-01-01T00:00:00Z", "properties": {"items": [{"p": 1}, '
           b'{"p": NaN}]}}')
    reason = refusal(Interaction, raw)
    assert "properties.items: NaN at [1].p" in reason, reason
    account = b'{"account_id": "a1", "attributes": {"arr": 1e999}}'
    assert "attributes.arr: Infinity" in refusal(AccountInput, account)


def test_integers_outside_64_bits_are_refused_and_the_bounds_accepted() -> None:
    assert "outside the 64-bit range" in refusal(ContactInput, contact(str(INT_MAX + 1).encode()))
    assert "outside the 64-bit range" in refusal(ContactInput, contact(str(INT_MIN - 1).encode()))
    for ok in (INT_MAX, INT_MIN, 1.7976931348623157e308, -5e-324):
        model = _adapter(ContactInput)(contact(orjson.dumps(ok)))
        assert model.attributes["score"] == ok


def test_strings_keys_sizes_and_depth_are_bounded() -> None:
    long = orjson.dumps("x" * (MAX_STRING_LENGTH + 1))
    assert f"exceeds {MAX_STRING_LENGTH}" in refusal(ContactInput, contact(long))
    _adapter(ContactInput)(contact(orjson.dumps("x" * MAX_STRING_LENGTH)))

    key = b'{"contact_id": "c1", "attributes": {"' + b"k" * (MAX_KEY_LENGTH + 1) + b'": 1}}'
    assert f"at most {MAX_KEY_LENGTH} characters" in refusal(ContactInput, key)
    inner = (b'{"contact_id": "c1", "attributes": {"o": {"' + b"k" * (MAX_KEY_LENGTH + 1)
             + b'": 1}}}')
    assert f"exceeds {MAX_KEY_LENGTH}" in refusal(ContactInput, inner)

    many = orjson.dumps(list(range(MAX_ITEMS + 1)))
    assert f"list of {MAX_ITEMS + 1} entries" in refusal(ContactInput, contact(many))

    deep = b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)
    assert f"nesting deeper than {MAX_DEPTH} levels" in refusal(ContactInput, contact(deep))
    _adapter(ContactInput)(contact(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH))


# --- identifiers ---------------------------------------------------------------

BAD_IDS = ["\u0000", "a/b", "..", "a\nb", '"<script>', "", " a", "x" * 201]


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_invalid_ids_are_refused_everywhere(bad: str) -> None:
    def check(model: Any, document: dict[str, Any], field: str) -> None:
        reason = refusal(model, orjson.dumps(document))
        assert f"{field}: " in reason and ("not a valid id" in reason or "at least 1" in reason
                                           or "at most 200" in reason), reason

    check(ContactInput, {"contact_id": bad}, "upsert.contact_id")
    check(ContactInput, {"op": "delete", "contact_id": bad}, "delete.contact_id")
    check(ContactInput, {"contact_id": "c1", "account_id": bad}, "upsert.account_id")
    check(AccountInput, {"account_id": bad}, "upsert.account_id")
    check(AccountInput, {"op": "delete", "account_id": bad}, "delete.account_id")
    event = {"event_id": "e1", "contact_id": "c1", "type": "purchase",
             "occurred_at": "2026-01-01T00:00:00Z"}
    check(Interaction, {**event, "event_id": bad}, "event_id")
    check(Interaction, {**event, "contact_id": bad}, "contact_id")
    check(StaticEdit, {"segment_id": bad, "contact_id": "c1", "op": "add"}, "segment_id")
    check(StaticEdit, {"segment_id": "s", "contact_id": bad, "op": "add"}, "contact_id")
    with pytest.raises(ValidationError):
        SegmentDefinition(id=bad, name="n", formula="a = 1")
    with pytest.raises(ValidationError):
        SegmentDefinition(id="s", name="n", kind="static", include=[bad])


def test_invalid_id_reason_is_readable() -> None:
    reason = refusal(ContactInput, b'{"contact_id": "a/b"}')
    assert reason == ("invalid input: upsert.contact_id: 'a/b' is not a valid id (a letter or "
                      "digit, then letters, digits and _ . : @ + -; at most 200 characters)")


# --- aggregates stay usable ------------------------------------------------------


def _sum_harness(func: str = "sum", op: str = ">", value: Any = 0) -> Harness:
    cond = AggregateCondition(func=func, property="amount", event_type="purchase",  # type: ignore[arg-type]
                              window=EverWindow(), op=op, value=value)  # type: ignore[arg-type]
    return Harness(catalog_of(seg("s", cond)))


def _stored(h: Harness) -> ContactState:
    assert h.state is not None
    return ContactState.from_bytes(h.state.to_bytes())


def test_purchase_amount_9e18_is_carried_and_its_sum_stays_storable() -> None:
    raw = (b'{"event_id": "e1", "contact_id": "c1", "type": "purchase", '
           b'"occurred_at": "2026-01-01T00:00:00Z", "properties": {"amount": 9000000000000000000}}')
    event = _adapter(Interaction)(raw)
    h = _sum_harness(op=">", value=2e19)
    h(event, T0)
    for n in range(2, 5):  # 9e18 each: past 2**63 after the second, past 2**64 after the third
        h(interaction("purchase", T0, amount=9_000_000_000_000_000_000, event_id=f"e{n}"), T0)
        h.state = _stored(h)  # what the evaluator does between inputs
    assert h.members() == {"s"}  # 3.6e19 > 2e19
    [(total, count)] = [v for v in h.state.features.values()]  # type: ignore[union-attr]
    assert count == 4 and total == pytest.approx(3.6e19) and isinstance(total, float)


def test_float_sum_saturates_and_the_next_purchase_still_evaluates() -> None:
    h = _sum_harness(op="<", value=100)
    h(interaction("purchase", T0, amount=1e308, event_id="e1"), T0)
    h(interaction("purchase", T0, amount=1e308, event_id="e2"), T0)
    stored = _stored(h)
    [(total, _)] = list(stored.features.values())
    assert total == FLOAT_MAX  # saturated, not Infinity (stored as null by orjson)
    h.state = stored
    h(interaction("purchase", T0, amount=-1e308, event_id="e3"), T0)  # None + int before
    h(interaction("purchase", T0, amount=-FLOAT_MAX, event_id="e4"), T0)
    h(interaction("purchase", T0, amount=5, event_id="e5"), T0)
    [(total, count)] = list(_stored(h).features.values())
    assert count == 5 and total < 100 and h.members() == {"s"}


def test_relative_window_sum_and_count_distinct_of_huge_numbers_evaluate() -> None:
    from models.conditions import RelativeWindow
    for func, value in (("sum", 1.0), ("avg", 1.0), ("count distinct", 1), ("most frequent", 1)):
        cond = AggregateCondition(func=func, property="amount", event_type="purchase",  # type: ignore[arg-type]
                                  window=RelativeWindow(amount=30, unit="days"), op=">=",
                                  value=value)
        cond_ever = cond.model_copy(update={"window": EverWindow()})
        for c in (cond, cond_ever):
            h = Harness(catalog_of(seg("s", c)))
            for n, amount in enumerate((1e308, 1e308, 2e300, INT_MAX, INT_MAX)):
                h(interaction("purchase", T0, amount=amount, event_id=f"e{n}"), T0)
                orjson.dumps(_stored(h).to_dict())


# --- versions --------------------------------------------------------------------


def test_version_the_state_cannot_pack_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValidationError, match="largest version segmentflow can store"):
        SegmentDefinition(id="s", name="s", formula="a = 1", version=2**32)
    raw = b'{"id": "s", "name": "s", "formula": "a = 1", "version": 4294967296}'
    with pytest.raises(ValidationError, match="version 4294967296 is above 2147483647"):
        SegmentDefinition.model_validate(orjson.loads(raw))


def test_the_largest_version_is_carried_through_state_and_changes() -> None:
    d = SegmentDefinition(id="s", name="s", formula="a = 1", version=MAX_SEGMENT_VERSION,
                          status="live")
    t = apply(None, _adapter(ContactInput)(b'{"contact_id": "c1", "attributes": {"a": 1}}'),
              catalog_of(d), T0, {})
    [change] = t.changes
    assert change.segment_version == MAX_SEGMENT_VERSION and change.sequence == 1
    assert t.state is not None
    stored = ContactState.from_bytes(t.state.to_bytes())
    assert stored.membership("s") == (True, 1, MAX_SEGMENT_VERSION)


def test_a_static_edit_time_needs_a_utc_offset() -> None:
    """Like every input time: an event-clock worker cannot place a naive one
    (it failed there, after ingest had accepted it)."""
    with pytest.raises(ValidationError, match="timezone"):
        StaticEdit.model_validate({"segment_id": "s", "contact_id": "c", "op": "add",
                                   "at": "2026-01-01T00:00:00"})
    edit = StaticEdit.model_validate({"segment_id": "s", "contact_id": "c", "op": "add",
                                      "at": "2026-01-01T00:00:00Z"})
    assert edit.at is not None and edit.at.utcoffset() is not None
