"""Bad formulas: a ``FormulaError`` (a ``ValueError``) at the right line and
column, with a useful list of what was expected and a readable message."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.conditions import Condition
from models.formula import FormulaError, format_condition, parse_formula
from models.formula.parser import event_type_references
from tests.strategies import condition_trees

VALUE = "a value (string, number, date…)"
CONDITION = (
    'a condition (a field, "performed", "last performed", an aggregate, "in segment", '
    '"bucket(…)", "consented to", "not" or "(")'
)
OPERATOR = (
    "an operator (=, !=, <, <=, >, >=, in, not in, contains, starts with, exists, "
    "not exists, between, within)"
)

# (text, line, column, an item of .expected (or None), a fragment of the message)
SYNTAX = [
    (
        'city = "Paris" and age = AND',
        1,
        26,
        VALUE,
        'line 1, column 26: expected a value (string, number, date…) after "=" but found "AND"',
    ),
    ("city = AND", 1, 8, VALUE, 'after "=" but found "AND"'),
    ("age >= 18 and", 1, 14, CONDITION, 'after "and" but found the end of the formula'),
    ("not", 1, 4, CONDITION, 'after "not"'),
    ("city", 1, 5, OPERATOR, 'after "city" but found the end of the formula'),
    ("x @ 3", 1, 3, OPERATOR, 'found "@"'),
    ("x == 1", 1, 4, VALUE, 'after "=" but found "="'),
    ("(a = 1 or b = 2", 1, 16, '")"', "found the end of the formula"),
    ("a = 1 )", 1, 7, "the end of the formula", 'found ")"'),
    ("age between 18", 1, 15, '"and"', 'after "18"'),
    ('x in ("a", )', 1, 12, VALUE, 'after "," but found ")"'),
    ("city = 'Paris'", 1, 8, VALUE, "strings use double quotes"),
    ('city = "Paris', 1, 8, VALUE, "unterminated or badly escaped string"),
    ('city = "a\\q"', 1, 8, VALUE, "unterminated or badly escaped string"),
    ("account.", 1, 9, "a name", 'after "account."'),
    ("performed purchase at least 3", 1, 30, '"times"', 'after "3"'),
    ("x < 3 days", 1, 11, '"from now"', 'expected "ago" or "from now" after "days"'),
    ("a = 1 b = 2", 1, 7, '"or"', 'found "b"'),
    (
        "performed purchase within last 3 dayz",
        1,
        34,
        "a time unit (minutes, hours, days, weeks)",
        'found "dayz"',
    ),
    ("sum amount of purchase ever", 1, 28, '"starts with"', 'after "ever"'),
    ("in segment vip", 1, 12, "a string", 'found "vip"'),
    (
        'performed purchase where amount > 10 and currency = "GBP" within last 7 days',
        1,
        59,
        '"or"',
        'after "GBP" but found "within"; a where clause with and/or needs parentheses',
    ),
    # multi-line: positions are per line, columns 1-based
    (
        'city = "Paris"\nand (age >= 18\n     or vip = tru)',
        3,
        15,
        VALUE,
        'line 3, column 15: expected a value (string, number, date…) after "="',
    ),
    ("a = 1\n\nand", 3, 4, CONDITION, "line 3, column 4"),
]


@pytest.mark.parametrize(("text", "line", "column", "expected", "fragment"), SYNTAX)
def test_syntax_errors(
    text: str, line: int, column: int, expected: str | None, fragment: str
) -> None:
    with pytest.raises(FormulaError) as info:
        parse_formula(text)
    err = info.value
    assert (err.line, err.column) == (line, column), str(err)
    if expected is not None:
        assert expected in err.expected, err.expected
    assert fragment in str(err)
    assert str(err).startswith(f"line {line}, column {column}: ")


SEMANTIC = [
    ('x in "a"', 1, 6, '"in" needs a list in parentheses'),
    ("x not in 3", 1, 10, '"not in" needs a list in parentheses'),
    ("x in ()", 1, 6, "at least one value"),
    ('x = ("a")', 1, 5, None),  # a list after "=" is not even syntax
    ('x in ("a", 2026-01-01)', 1, 12, "lists hold strings, numbers or booleans"),
    ("x contains 2026-01-01", 1, 12, '"contains" needs a string, number or boolean'),
    ('x between 1 and "z"', 1, 17, "bounds of one type, not a number and a string"),
    ("x between false and true", 1, 21, "cannot order booleans"),
    ("sum amount of purchase ever > 3 days ago", 1, 31, "cannot be compared with a relative"),
    ("x starts with 3", 1, 15, '"starts with" needs a string'),
    ("x > true", 1, 5, "cannot order booleans"),
    ("performed purchase at least -1 times", 1, 29, "the count cannot be negative (-1)"),
    ("performed purchase exactly 2.5 times", 1, 28, "the count must be a whole number"),
    ("performed purchase within last -3 days", 1, 32, "cannot be negative"),
    ("x < 3 fortnights ago", 1, 7, 'unknown time unit "fortnights"'),
    ("signed_up_at within last 2 months", 1, 28, 'unknown time unit "months"'),
    ("birthday in next 2 weeks", 1, 20, 'anniversary windows count days, not "weeks"'),
    ("x = 2026-13-01", 1, 5, "not a valid date"),
    ("x = 2026-02-30T10:00:00Z", 1, 5, "not a valid date-time"),
    ("x > 2026-01-01T10:00:00", 1, 5, "has no time zone"),
    ("x = 1e999", 1, 5, "out of range"),
    (
        "performed purchase between 2026-03-01 and 2026-01-01",
        1,
        43,
        "the range ends before it starts",
    ),
    # Event types are data: the parser checks the name's form; whether the
    # type is declared is checked where definitions are written (the API).
    ("performed `page seen` ever", 1, 11, '"page seen" is not an event type name'),
    ('in segment ""', 1, 12, "the segment id is empty"),
    ("`a.b` = 1", 1, 1, "cannot contain '.'"),
    (
        'performed purchase where in segment "vip" ever',
        1,
        20,
        '"in_segment" conditions are not allowed',
    ),
    (
        "sum amount of purchase where performed purchase ever ever > 1",
        1,
        24,
        '"performed" conditions are not allowed',
    ),
    ("", 1, 1, "the formula is empty"),
    ("  \n ", 1, 1, "the formula is empty"),
]


@pytest.mark.parametrize(("text", "line", "column", "fragment"), SEMANTIC)
def test_semantic_errors(text: str, line: int, column: int, fragment: str | None) -> None:
    with pytest.raises(FormulaError) as info:
        parse_formula(text)
    err = info.value
    assert (err.line, err.column) == (line, column), str(err)
    if fragment is not None:
        assert fragment in str(err)


def test_semantic_errors_list_the_alternatives() -> None:
    with pytest.raises(FormulaError) as info:
        parse_formula("x < 3 fortnights ago")
    assert info.value.expected == ["minutes", "hours", "days", "weeks"]
    # An undeclared event type parses (types are data); the API refuses it
    # with the declared alternatives (tests/unit/test_event_types.py), at
    # the position event_type_references gives.
    parse_formula("performed purchse ever")
    assert event_type_references("performed purchse ever") == [("purchse", 1, 11)]


def test_error_on_later_line_of_multi_line_semantic_error() -> None:
    text = "performed purchase\n  within last 3 days\n  and birthday in next 2 weeks"
    with pytest.raises(FormulaError) as info:
        parse_formula(text)
    assert (info.value.line, info.value.column) == (3, 26)


def test_formula_error_is_a_value_error_and_pickles() -> None:
    with pytest.raises(ValueError) as info:
        parse_formula("city =")
    err = info.value
    assert isinstance(err, FormulaError)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.line, copy.column, copy.expected, str(copy)) == (
        err.line,
        err.column,
        err.expected,
        str(err),
    )


def test_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse_formula(42)  # type: ignore[arg-type]


def test_absurd_inputs_are_formula_errors_not_crashes() -> None:
    with pytest.raises(FormulaError, match="nested too deeply"):
        parse_formula("not " * 2000 + "a = 1")  # within MAX_FORMULA_LENGTH
    with pytest.raises(FormulaError, match="out of range") as info:
        parse_formula("x = " + "9" * 5000)
    assert (info.value.line, info.value.column) == (1, 5)
    # deep parentheses are fine (they leave no node behind)
    assert parse_formula("(" * 2000 + "a = 1" + ")" * 2000) == parse_formula("a = 1")


_FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(st.text(max_size=60))
def test_any_text_parses_or_raises_formula_error(text: str) -> None:
    try:
        parse_formula(text)
    except FormulaError as err:
        assert err.line >= 1 and err.column >= 1


@_FUZZ
@given(condition_trees(max_leaves=4), st.data())
def test_damaged_formulas_raise_only_formula_errors(tree: Condition, data: st.DataObject) -> None:
    text = format_condition(tree)
    cut = data.draw(st.integers(0, len(text)))
    junk = data.draw(st.sampled_from(["", "(", ")", '"', "and", " not", "`", ",", "=", "1"]))
    damaged = text[:cut] + junk + text[cut + data.draw(st.integers(0, 3)) :]
    try:
        parse_formula(damaged)
    except FormulaError as err:
        lines = damaged.split("\n")
        assert 1 <= err.line <= len(lines)
        assert 1 <= err.column <= len(lines[err.line - 1]) + 1
