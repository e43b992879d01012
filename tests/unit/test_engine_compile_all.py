"""Every tree the formula language accepts compiles, and evaluates without
raising, on contacts with arbitrary data; formulas parsed from text work."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Tick, apply, explain
from models.inputs import ContactUpsert, Interaction
from tests.engine_helpers import Harness, catalog_of, interaction, seg, upsert, utc
from tests.strategies import condition_trees

NOW = utc(2026, 6, 1, 12)
json_values = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["a", "2026-06-01", "2026-05-30T10:00:00+02:00", "2026-06-01T10:00:00"]),
    st.lists(st.sampled_from(["a", 1, True]), max_size=2),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=condition_trees(), attrs=st.dictionaries(st.sampled_from(
    ["city", "age", "score", "signup", "x", "account"]), json_values, max_size=4),
    props=st.dictionaries(st.sampled_from(["amount", "category", "x"]), json_values, max_size=3))
def test_valid_trees_compile_and_evaluate(tree: Any, attrs: dict[str, Any],
                                          props: dict[str, Any]) -> None:
    # Longer than any generated reference (max 10 characters): the tree
    # cannot reference the segment itself.
    cat = catalog_of(seg("segment-under-test", tree))
    tr = apply(None, ContactUpsert(contact_id="c1", attributes=attrs), cat, NOW, {})
    for etype in ("purchase", "email_opened", "page_visited"):
        tr = apply(tr.state, Interaction(event_id=etype, contact_id="c1", type=etype,  # type: ignore[arg-type]
                                         occurred_at=NOW, properties=props), cat, NOW, {})
    tr = apply(tr.state, Tick(), cat, utc(2027, 1, 1), {})
    assert tr.next_due is None or tr.next_due > utc(2027, 1, 1)
    str(explain(tr.state, "segment-under-test", cat, NOW, {}))


def test_segments_from_formula_text() -> None:
    from models.formula import parse_formula

    cond = parse_formula(
        'age >= 18 and performed purchase where category = "shoes" at least 2 times '
        "within last 30 days"
    )
    h = Harness(catalog_of(seg("s", cond)))
    h(upsert(age=30), NOW)
    h(interaction("purchase", NOW, category="shoes"), NOW)
    assert h.members() == set()
    h(interaction("purchase", NOW, category="shoes"), NOW)
    assert h.members() == {"s"}
