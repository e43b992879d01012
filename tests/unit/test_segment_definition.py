"""SegmentDefinition keeps formula and condition in step: either derives the
other, both must agree, formula errors carry their line and column."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from models.conditions import AllOf, Comparison, InSegment, Negation, Performed, RelativeWindow
from models.formula import format_condition, parse_formula
from models.segments import SegmentDefinition

FORMULA = 'city = "Paris" and not in segment "unsubscribed"'
TREE = AllOf(
    args=[
        Comparison(field="city", op="=", value="Paris"),
        Negation(arg=InSegment(segment_id="unsubscribed")),
    ]
)


def make(**kw: Any) -> SegmentDefinition:
    return SegmentDefinition(**{"id": "s1", "name": "S1", **kw})


def test_formula_only_derives_the_condition() -> None:
    seg = make(formula=FORMULA)
    assert seg.condition == TREE
    assert seg.formula == FORMULA


def test_condition_only_derives_the_canonical_formula() -> None:
    seg = make(condition=TREE)
    assert seg.formula == FORMULA


def test_condition_as_json_derives_the_formula() -> None:
    seg = SegmentDefinition.model_validate(
        {
            "id": "s1",
            "name": "S1",
            "condition": {
                "node": "performed",
                "event_type": "purchase",
                "window": {"window": "relative", "amount": 90, "unit": "days"},
            },
        }
    )
    assert seg.formula == "performed purchase within last 90 days"


def test_user_layout_of_the_formula_is_kept() -> None:
    text = 'city = "Paris"\n  AND not in segment "unsubscribed"'
    seg = make(formula=text)
    assert seg.formula == text
    assert seg.condition == TREE


def test_both_given_and_equal_is_fine() -> None:
    seg = make(formula=FORMULA, condition=TREE.model_dump(mode="json"))
    assert seg.condition == TREE


@pytest.mark.parametrize(
    ("condition", "where"),
    [
        (Comparison(field="city", op="=", value="Lyon"), "condition.args"),
        (
            AllOf(args=[Comparison(field="city", op="=", value="Lyon"), TREE.args[1]]),
            'condition.args[0].value: formula has "Paris", condition has "Lyon"',
        ),
    ],
)
def test_both_given_and_different_names_the_mismatch(condition: Any, where: str) -> None:
    with pytest.raises(ValidationError) as info:
        make(formula=FORMULA, condition=condition)
    assert "formula and condition disagree" in str(info.value)
    assert where in str(info.value)


def test_int_and_float_mismatch_is_a_mismatch() -> None:
    with pytest.raises(ValidationError, match=r"formula has 3, condition has 3\.0"):
        make(formula="age = 3", condition=Comparison(field="age", op="=", value=3.0))


def test_formula_errors_surface_with_line_and_column() -> None:
    with pytest.raises(ValidationError) as info:
        make(formula='city = "Paris" and age = AND')
    errors = info.value.errors()
    assert errors[0]["loc"] == ("formula",)
    assert (
        'line 1, column 26: expected a value (string, number, date…) after "=" but found "AND"'
        in errors[0]["msg"]
    )


def test_multi_line_formula_error_position() -> None:
    with pytest.raises(ValidationError, match="line 2, column 24: unknown time unit"):
        make(formula="performed purchase\n  and signed_up_at < 3 fortnight ago")


def test_inexpressible_condition_is_refused() -> None:
    with pytest.raises(ValidationError, match="not a list"):
        make(condition=Comparison(field="x", op="=", value=[1]))


@pytest.mark.parametrize("kind", ["dynamic", "compound"])
def test_dynamic_and_compound_need_a_formula(kind: str) -> None:
    with pytest.raises(ValidationError, match=f"a {kind} segment needs a formula or a condition"):
        make(kind=kind)
    with pytest.raises(ValidationError, match="needs a formula"):
        make(kind=kind, formula="   ")


def test_static_segments_have_neither() -> None:
    seg = make(kind="static", include=["c1"])
    assert seg.formula is None and seg.condition is None
    assert make(kind="static", formula="").formula is None
    with pytest.raises(ValidationError, match="static segment has no formula"):
        make(kind="static", formula="age > 3")


def test_compound_segment() -> None:
    seg = make(kind="compound", formula='in segment "vip" and performed purchase ever')
    assert seg.condition == AllOf(
        args=[InSegment(segment_id="vip"), Performed(event_type="purchase")]
    )


@pytest.mark.parametrize(
    "formula",
    [
        'in segment "s1"',
        'a = 1 or not in segment "s1"',
        'performed purchase ever and (b = 2 or in segment "s1")',
    ],
)
def test_self_reference_is_refused(formula: str) -> None:
    with pytest.raises(ValidationError, match='segment "s1" references itself'):
        make(formula=formula)


def test_json_round_trip_keeps_both_forms() -> None:
    seg = make(
        formula="performed purchase where amount > 10.0 within last 7 days",
        status="live",
        version=3,
    )
    for dumped in (seg.model_dump_json(), seg.model_dump_json(exclude_unset=True)):
        again = SegmentDefinition.model_validate_json(dumped)
        assert again == seg
        assert again.condition is not None
        assert again.condition.model_dump_json() == seg.condition.model_dump_json()  # type: ignore[union-attr]
    assert seg.condition == Performed(
        event_type="purchase",
        where=Comparison(field="amount", op=">", value=10.0),
        window=RelativeWindow(amount=7, unit="days"),
    )


def test_derived_formula_parses_back() -> None:
    seg = make(condition=TREE)
    assert parse_formula(seg.formula or "") == TREE
    assert format_condition(seg.condition) == seg.formula  # type: ignore[arg-type]


def test_definition_stays_frozen() -> None:
    seg = make(formula=FORMULA)
    with pytest.raises(ValidationError):
        seg.formula = "a = 1"  # type: ignore[misc]
