"""Parsed formulas are cached by exact text (models/formula/parser.py): a
definition's formula is parsed once per process, not 2 + 2 x partitions
times, and every definition is still fully validated."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from models.formula import FormulaError, parse_formula
from models.formula import parser as formula_parser
from models.segments import SegmentDefinition


@pytest.fixture(autouse=True)
def empty_cache():
    formula_parser.clear_parse_cache()
    yield
    formula_parser.clear_parse_cache()


def test_same_text_is_parsed_once(monkeypatch):
    calls = []
    real = formula_parser._parse
    monkeypatch.setattr(formula_parser, "_parse", lambda text: calls.append(text) or real(text))
    first = parse_formula('city = "Paris"')
    assert parse_formula('city = "Paris"') is first
    SegmentDefinition.model_validate({"id": "s", "name": "s", "formula": 'city = "Paris"'})
    assert calls == ['city = "Paris"']
    # Another text (even equivalent) is parsed on its own.
    assert parse_formula('city  = "Paris"') == first
    assert len(calls) == 2


def test_refusals_are_not_cached():
    for _ in range(2):
        with pytest.raises(FormulaError):
            parse_formula('city = ')


def test_a_cached_formula_still_checks_its_condition():
    parse_formula("a = 1")
    with pytest.raises(ValidationError, match="formula and condition disagree"):
        SegmentDefinition.model_validate({
            "id": "s", "name": "s", "formula": "a = 1",
            "condition": {"node": "compare", "field": "a", "op": "=", "value": 1.0}})
    with pytest.raises(ValidationError, match="formula and condition disagree"):
        SegmentDefinition.model_validate({
            "id": "s", "name": "s", "formula": "a = 1",
            "condition": {"node": "compare", "field": "a", "op": "=", "value": 2}})


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(formula_parser, "PARSE_CACHE_MAX_ENTRIES", 3)
    for i in range(10):
        parse_formula(f"a = {i}")
    assert len(formula_parser._cache) == 3
    monkeypatch.setattr(formula_parser, "PARSE_CACHE_MAX_CHARS", 12)
    parse_formula("abc = 1")
    parse_formula("abcd = 2")
    assert formula_parser._cache_chars <= 12
