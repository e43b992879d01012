"""Issue #11 (safety): one nesting limit and one length limit for formulas,
checked wherever a definition is accepted, with errors naming the limit."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from models.formula import FormulaError, parse_formula
from models.formula.limits import MAX_FORMULA_LENGTH, MAX_NESTING, condition_depth
from models.segments import SegmentDefinition


def nots(depth: int) -> str:
    """``depth`` levels: depth - 1 ``not`` around one comparison."""
    return "not " * (depth - 1) + 'city = "x"'


def alternating(depth: int) -> str:
    """``depth`` levels of alternating or/and groups."""
    text = 'city = "x"'
    for level in range(depth - 1):
        op = "or" if level % 2 else "and"
        text = f'(a = {level} {op} {text})'
    return text


def definition(**values: object) -> SegmentDefinition:
    return SegmentDefinition.model_validate({"id": "s", "name": "s", **values})


@pytest.mark.parametrize("make", [nots, alternating])
def test_formula_at_the_nesting_limit_is_accepted_and_loads_back(make) -> None:
    defn = definition(formula=make(MAX_NESTING))
    assert condition_depth(defn.condition) == MAX_NESTING
    # what is stored is what a restart reads back (pydantic's JSON depth limit)
    assert SegmentDefinition.model_validate_json(defn.model_dump_json()) == defn


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 220, 254, 5000])
@pytest.mark.parametrize("make", [nots, alternating])
def test_formula_deeper_than_the_limit_is_refused_naming_it(make, depth: int) -> None:
    text = make(depth)
    if len(text) > MAX_FORMULA_LENGTH:
        text = text[:MAX_FORMULA_LENGTH]
    with pytest.raises(FormulaError):
        parse_formula(text)
    with pytest.raises(ValidationError) as info:
        definition(formula=text)
    if len(make(depth)) <= MAX_FORMULA_LENGTH:
        assert "MAX_NESTING" in str(info.value) and f"at most {MAX_NESTING}" in str(info.value)


def test_condition_given_as_a_tree_is_limited_too() -> None:
    tree = definition(formula='city = "x"').condition.model_dump(mode="json")
    for _ in range(MAX_NESTING):
        tree = {"node": "not", "arg": tree}
    with pytest.raises(ValidationError) as info:
        definition(condition=tree)
    assert "MAX_NESTING" in str(info.value)


def test_too_long_formula_is_refused_before_parsing() -> None:
    text = " or ".join(f'city = "P{i}"' for i in range(4000))
    assert len(text) > MAX_FORMULA_LENGTH
    start = time.perf_counter()
    with pytest.raises(ValidationError) as info:
        definition(formula=text)
    assert time.perf_counter() - start < 0.05  # parsing it would take about 0.5 s
    assert "MAX_FORMULA_LENGTH" in str(info.value)
    assert len(str(info.value)) < 1000  # the formula is not echoed whole


def test_a_condition_whose_formula_would_be_too_long_is_refused() -> None:
    text = " or ".join(f'city = "P{i}"' for i in range(1200))
    tree = definition(formula=text[:MAX_FORMULA_LENGTH - 200].rsplit(" or ", 1)[0]
                      ).condition.model_dump(mode="json")
    tree["args"] = tree["args"] * 3
    with pytest.raises(ValidationError) as info:
        definition(condition=tree)
    assert "MAX_FORMULA_LENGTH" in str(info.value)
