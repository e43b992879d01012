"""Round trips between the two forms of a formula.

- every valid tree: ``parse(format(tree)) == tree`` (same JSON, so ints stay
  ints, floats floats) and its text is canonical: ``format(parse(text)) == text``;
- the same tree survives JSON (also ``exclude_unset``, what the codec sends);
- layout and keyword case never change the meaning;
- trees the language cannot express are refused by the formatter.
"""

from __future__ import annotations

import random
import re
from datetime import date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from models.conditions import (
    AggregateCondition,
    AllOf,
    Between,
    Comparison,
    Condition,
    DateLiteral,
    DateTimeLiteral,
    Exists,
    InSegment,
    Performed,
    RangeWindow,
    RelativeTime,
)
from models.formula import format_condition, parse_formula
from models.formula.rules import KEYWORDS
from tests.strategies import condition_trees, property_conditions

CONDITION = TypeAdapter(Condition)
EXAMPLES = 400

_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_settings
@given(condition_trees())
def test_tree_to_text_to_tree(tree: Condition) -> None:
    text = format_condition(tree)
    back = parse_formula(text)
    assert back == tree, text
    assert back.model_dump_json() == tree.model_dump_json(), text
    # the formatter's output is canonical: formatting the parse gives it back
    assert format_condition(back) == text
    # the stored JSON form reads back to the same tree, also when dumped
    # with exclude_unset (tags are kept)
    for dumped in (tree.model_dump_json(), tree.model_dump_json(exclude_unset=True)):
        again = CONDITION.validate_json(dumped)
        assert again.model_dump_json() == tree.model_dump_json()


@settings(_settings, max_examples=200)
@given(property_conditions(max_leaves=6))
def test_property_conditions_round_trip(tree: Condition) -> None:
    text = format_condition(tree)
    assert parse_formula(text).model_dump_json() == tree.model_dump_json(), text


_PIECES = re.compile(r'"(?:[^"\\]|\\.)*"|`(?:[^`]|``)*`|[^"`]+')


def _noisy(text: str, rnd: random.Random) -> str:
    """The same formula with random layout and keyword case: every space
    outside strings and quoted names becomes other whitespace, and
    keywords change case."""
    out: list[str] = []
    for piece in _PIECES.findall(text):
        if piece[0] in '"`':
            out.append(piece)
            continue
        for word in re.split(r"( )", piece):
            if word == " ":
                out.append(rnd.choice([" ", "  ", "\n", "\n    ", "\t", " \r\n "]))
            elif word.lower() in KEYWORDS:
                out.append(rnd.choice([word.upper(), word.title(), word]))
            else:
                out.append(word)
    return "".join(out)


@settings(_settings, max_examples=150)
@given(condition_trees(max_leaves=5), st.randoms(use_true_random=False))
def test_layout_and_keyword_case_do_not_matter(tree: Condition, rnd: random.Random) -> None:
    text = format_condition(tree)
    noisy = _noisy(text, rnd)
    back = parse_formula(noisy)
    assert back.model_dump_json() == tree.model_dump_json(), noisy
    assert format_condition(back) == text


def _cmp(**kw: object) -> Comparison:
    return Comparison.model_construct(**{"node": "compare", **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tree", "problem"),
    [
        (Comparison(field="x", op="=", value=["a"]), "not a list"),
        (Comparison(field="x", op="in", value="a"), "needs a list"),
        (Comparison(field="x", op="in", value=[]), "at least one value"),
        (Comparison(field="x", op="starts with", value=3), "needs a string"),
        (Comparison(field="x", op="<", value=True), "cannot order booleans"),
        (Comparison(field="x", op="=", value=float("nan")), "cannot be written"),
        (Comparison(field="a..b", op="=", value=1), "cannot be written"),
        (Comparison(field="", op="=", value=1), "cannot be written"),
        (Exists(field="new\nline"), "cannot be written"),
        (
            Comparison(field="x", op="=", value=DateTimeLiteral(datetime=datetime(2026, 1, 1))),
            "no time zone",
        ),
        (Performed(event_type="bad name"), "not an event type name"),
        (
            Performed(event_type="purchase", where=InSegment(segment_id="vip")),
            "not allowed inside",
        ),
        (
            Performed(
                event_type="purchase",
                window=RangeWindow(
                    start=DateLiteral(date=date(2026, 3, 1)), end=DateLiteral(date=date(2026, 1, 1))
                ),
            ),
            "ends before it starts",
        ),
        (InSegment(segment_id=""), "segment id is empty"),
        (Comparison(field="x", op="in", value=[DateLiteral(date=date(2026, 1, 1))]), "lists hold"),
        (Between(field="x", low=1, high="a"), "bounds of one type"),
        (
            AggregateCondition(
                func="sum",
                property="a",
                event_type="purchase",
                op=">",
                value=RelativeTime(amount=1, unit="days"),
            ),
            "relative time",
        ),
        (AllOf.model_construct(node="and", args=[Exists(field="x")]), "at least two"),
    ],
)
def test_formatter_refuses_what_the_language_cannot_express(tree: object, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        format_condition(tree)  # type: ignore[arg-type]
