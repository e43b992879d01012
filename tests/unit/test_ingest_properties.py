"""Property (issue #11, "Safety"): any input the ingest models accept can be
evaluated by the engine, stored (ContactState bytes round trip) and encoded
(orjson), whatever its values — including the values ingest must refuse
(NaN, ±Infinity, integers beyond 64 bits, deep nesting, long strings)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agents.codec import model_bytes
from agents.ingest import _adapter
from engine import AccountChanged, ContactState, Tick, apply
from models.inputs import AccountInput, ContactInput, Interaction
from models.values import INT_MAX, INT_MIN, MAX_DEPTH, MAX_STRING_LENGTH
from tests.engine_helpers import catalog_of, seg, utc

T0 = utc(2026, 5, 1, 12)

FORMULAS = [
    "sum amount of purchase ever > 100",
    "avg amount of purchase within last 30 days > 1.5",
    "min amount of purchase ever < 0",
    "max amount of purchase within last 7 days >= 1e300",
    "count distinct amount of purchase ever >= 2",
    "most frequent amount of purchase ever = 5",
    "sum amount of purchase within last 30 days < -1e300",
    "count distinct amount of purchase within last 30 days >= 3",
    "score > 10",
    "score <= -9000000000000000000",
    'name contains "a"',
    "tags contains 1",
    'account.tier = "gold"',
    "account.size > 5",
]
CATALOG = catalog_of(*(seg(f"s{n}", formula=f) for n, f in enumerate(FORMULAS)))

# Numbers at every edge: the ones ingest refuses too (it must, or the engine
# sees them).
edge_numbers = st.sampled_from([
    0, 1, -1, 5, 5.0, 1.5, INT_MAX, INT_MIN, INT_MAX + 1, INT_MIN - 1, 2**64, 10**30,
    9_000_000_000_000_000_000, 1e300, -1e300, 1.7976931348623157e308, -1.7976931348623157e308,
    float("nan"), float("inf"), float("-inf"), 5e-324, 2.0**63, -(2.0**63), 1e19,
])
numbers = st.one_of(edge_numbers, st.integers(), st.floats(allow_nan=True, allow_infinity=True))
scalars = st.one_of(numbers, st.booleans(), st.none(), st.text(max_size=8),
                    st.sampled_from(["a", "x" * (MAX_STRING_LENGTH + 1)]))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(["a", "b", "amount"]), inner,
                                            max_size=3)),
    max_leaves=8,
)
deep = st.integers(MAX_DEPTH - 1, MAX_DEPTH + 1).map(lambda d: json.loads("[" * d + "]" * d))
attribute_values = st.one_of(values, deep)
KEYS = ["score", "name", "tags", "amount", "tier", "size"]
objects = st.dictionaries(st.sampled_from(KEYS), attribute_values, max_size=4)


def _raw(doc: dict[str, Any]) -> bytes:
    """JSON as an upstream might write it: NaN, Infinity and big integers
    included (Python's encoder writes them; orjson would not)."""
    return json.dumps(doc, allow_nan=True).encode()


@st.composite
def input_docs(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["contact", "account", "interaction"]))
    if kind == "contact":
        doc = {"contact_id": "c1", "attributes": draw(objects),
               "mode": draw(st.sampled_from(["merge", "replace"]))}
        if draw(st.booleans()):
            doc["account_id"] = "a1"
    elif kind == "account":
        doc = {"account_id": "a1", "attributes": draw(objects)}
    else:
        days = draw(st.integers(0, 40))
        doc = {"event_id": f"e{draw(st.integers(0, 30))}", "contact_id": "c1",
               "type": "purchase",
               "occurred_at": (T0 - timedelta(days=days)).isoformat(),
               "properties": {"amount": draw(attribute_values)}}
    return kind, _raw(doc)


DECODE = {"contact": _adapter(ContactInput), "account": _adapter(AccountInput),
          "interaction": _adapter(Interaction)}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(input_docs(), min_size=1, max_size=8))
def test_whatever_ingest_accepts_the_engine_evaluates_stores_and_encodes(
    docs: list[tuple[str, bytes]],
) -> None:
    state: ContactState | None = None
    accounts: dict[str, dict[str, Any]] = {}
    now = T0
    for kind, raw in docs:
        try:
            model = DECODE[kind](raw)
        except ValidationError:
            continue  # dead-lettered at ingest
        if kind == "account":
            accounts["a1"] = {**accounts.get("a1", {}), **model.attributes}
            command: Any = AccountChanged("a1")
        else:
            command = model
        transition = apply(state, command, CATALOG, now, accounts)
        for change in transition.changes:
            orjson.loads(model_bytes(change))
        state = transition.state
        if state is not None:
            raw_state = state.to_bytes()  # raises on what orjson cannot encode
            restored = ContactState.from_bytes(raw_state)
            assert restored == state
            assert restored.to_bytes() == raw_state
            state = restored  # the evaluator reads states back like this
        now += timedelta(days=1)
    # and time passing re-evaluates the same state
    if state is not None:
        t = apply(state, Tick(), CATALOG, now + timedelta(days=60), accounts)
        if t.state is not None:
            ContactState.from_bytes(t.state.to_bytes())
