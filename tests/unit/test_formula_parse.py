"""Formula text → condition tree, one construct at a time (hand-written
expectations), plus precedence, grouping, case and layout rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from models.conditions import (
    AggregateCondition,
    AllOf,
    AnniversaryWindow,
    AnyOf,
    Between,
    Comparison,
    Condition,
    DateLiteral,
    DateTimeLiteral,
    DateWithin,
    EverWindow,
    Exists,
    InSegment,
    LastPerformed,
    Negation,
    Performed,
    RangeWindow,
    RelativeTime,
    RelativeWindow,
)
from models.formula import format_condition, parse_formula


def cmp(field: str, op: str, value: object) -> Comparison:
    return Comparison(field=field, op=op, value=value)  # type: ignore[arg-type]


def last(amount: int, unit: str = "days") -> RelativeWindow:
    return RelativeWindow(direction="last", amount=amount, unit=unit)  # type: ignore[arg-type]


def d(text: str) -> DateLiteral:
    return DateLiteral(date=date.fromisoformat(text))


CASES: list[tuple[str, Condition]] = [
    # profile comparisons over every literal type
    ('city = "Paris"', cmp("city", "=", "Paris")),
    ("age >= 18", cmp("age", ">=", 18)),
    ("age > 18", cmp("age", ">", 18)),
    ("age < 18", cmp("age", "<", 18)),
    ("age <= 18", cmp("age", "<=", 18)),
    ("score != 3.5", cmp("score", "!=", 3.5)),
    ("vip = true", cmp("vip", "=", True)),
    ("vip = false", cmp("vip", "=", False)),
    ("balance = -12", cmp("balance", "=", -12)),
    ("ratio = 1e-05", cmp("ratio", "=", 1e-05)),
    ("signed_up_at < 2026-01-01", cmp("signed_up_at", "<", d("2026-01-01"))),
    (
        "last_seen_at > 2026-01-01T09:30:00Z",
        cmp("last_seen_at", ">", DateTimeLiteral(datetime=datetime(2026, 1, 1, 9, 30, tzinfo=UTC))),
    ),
    (
        "last_seen_at > 2026-01-01T09:30:00.250000+02:00",
        cmp(
            "last_seen_at",
            ">",
            DateTimeLiteral(
                datetime=datetime(2026, 1, 1, 9, 30, 0, 250000, timezone(timedelta(hours=2)))
            ),
        ),
    ),
    (
        "signed_up_at < 30 days ago",
        cmp("signed_up_at", "<", RelativeTime(amount=30, unit="days", direction="ago")),
    ),
    (
        "renewal_at <= 7 days from now",
        cmp("renewal_at", "<=", RelativeTime(amount=7, unit="days", direction="from_now")),
    ),
    (
        "seen_at > 1 hour ago",
        cmp("seen_at", ">", RelativeTime(amount=1, unit="hours", direction="ago")),
    ),
    ('city in ("Paris", "Lyon")', cmp("city", "in", ["Paris", "Lyon"])),
    ('city not in ("Paris")', cmp("city", "not in", ["Paris"])),
    ('size in (1, 2.5, true, "M")', cmp("size", "in", [1, 2.5, True, "M"])),
    ('name contains "son"', cmp("name", "contains", "son")),
    ('email starts with "info@"', cmp("email", "starts with", "info@")),
    ("phone exists", Exists(field="phone")),
    ("phone not exists", Exists(field="phone", negated=True)),
    ("age between 18 and 30", Between(field="age", low=18, high=30)),
    (
        "signed_up_at between 2026-01-01 and 30 days ago",
        Between(
            field="signed_up_at",
            low=d("2026-01-01"),
            high=RelativeTime(amount=30, unit="days"),
        ),
    ),
    # firmographic / nested / quoted names
    ('account.industry = "Retail"', cmp("account.industry", "=", "Retail")),
    ("account.employees >= 500", cmp("account.employees", ">=", 500)),
    ('`first name` = "Ada"', cmp("first name", "=", "Ada")),
    ("`count` = 1", cmp("count", "=", 1)),
    ("`a``b` exists", Exists(field="a`b")),
    ("account.`legal name` exists", Exists(field="account.legal name")),
    # relative dates
    ("signed_up_at within last 14 days", DateWithin(field="signed_up_at", window=last(14))),
    (
        "trial_ends_at within next 3 days",
        DateWithin(
            field="trial_ends_at", window=RelativeWindow(direction="next", amount=3, unit="days")
        ),
    ),
    ("birthday in next 7 days", AnniversaryWindow(field="birthday", direction="next", days=7)),
    ("birthday in last 3 days", AnniversaryWindow(field="birthday", direction="last", days=3)),
    # behaviour
    (
        'performed email_opened where campaign = "spring" at least 3 times within last 30 days',
        Performed(
            event_type="email_opened",
            where=cmp("campaign", "=", "spring"),
            count_op="at least",
            count=3,
            window=last(30),
        ),
    ),
    ("performed purchase ever", Performed(event_type="purchase")),
    ("performed purchase", Performed(event_type="purchase")),
    (
        "performed purchase between 2026-01-01 and 2026-03-31",
        Performed(
            event_type="purchase",
            window=RangeWindow(start=d("2026-01-01"), end=d("2026-03-31")),
        ),
    ),
    (
        "performed form_submitted exactly 1 time within last 2 weeks",
        Performed(
            event_type="form_submitted", count_op="exactly", count=1, window=last(2, "weeks")
        ),
    ),
    (
        "performed email_bounced at most 0 times within last 12 hours",
        Performed(
            event_type="email_bounced", count_op="at most", count=0, window=last(12, "hours")
        ),
    ),
    (
        "not performed purchase within last 90 days",
        Negation(arg=Performed(event_type="purchase", window=last(90))),
    ),
    (
        'performed purchase where (amount > 10 and currency = "GBP") within last 7 days',
        Performed(
            event_type="purchase",
            where=AllOf(args=[cmp("amount", ">", 10), cmp("currency", "=", "GBP")]),
            window=last(7),
        ),
    ),
    (
        "performed purchase where not coupon exists ever",
        Performed(event_type="purchase", where=Negation(arg=Exists(field="coupon"))),
    ),
    (
        "last performed purchase before 180 days ago",
        LastPerformed(event_type="purchase", op="before", at=RelativeTime(amount=180, unit="days")),
    ),
    (
        "last performed email_clicked after 2026-01-01",
        LastPerformed(event_type="email_clicked", op="after", at=d("2026-01-01")),
    ),
    (
        'last performed page_visited where url starts with "/pricing" after 2 hours ago',
        LastPerformed(
            event_type="page_visited",
            where=cmp("url", "starts with", "/pricing"),
            op="after",
            at=RelativeTime(amount=2, unit="hours"),
        ),
    ),
    # aggregates
    (
        "sum amount of purchase within last 365 days >= 500",
        AggregateCondition(
            func="sum",
            property="amount",
            event_type="purchase",
            window=last(365),
            op=">=",
            value=500,
        ),
    ),
    (
        "avg amount of purchase ever > 20",
        AggregateCondition(
            func="avg",
            property="amount",
            event_type="purchase",
            window=EverWindow(),
            op=">",
            value=20,
        ),
    ),
    (
        "min amount of return ever < 5.0",
        AggregateCondition(func="min", property="amount", event_type="return", op="<", value=5.0),
    ),
    (
        'max amount of purchase where currency = "EUR" ever >= 100',
        AggregateCondition(
            func="max",
            property="amount",
            event_type="purchase",
            where=cmp("currency", "=", "EUR"),
            op=">=",
            value=100,
        ),
    ),
    (
        "count distinct product_id of purchase within last 30 days >= 3",
        AggregateCondition(
            func="count distinct",
            property="product_id",
            event_type="purchase",
            window=last(30),
            op=">=",
            value=3,
        ),
    ),
    (
        'most frequent category of purchase within last 90 days = "shoes"',
        AggregateCondition(
            func="most frequent",
            property="category",
            event_type="purchase",
            window=last(90),
            op="=",
            value="shoes",
        ),
    ),
    (
        'most frequent channel of email_clicked ever in ("web", "app")',
        AggregateCondition(
            func="most frequent",
            property="channel",
            event_type="email_clicked",
            op="in",
            value=["web", "app"],
        ),
    ),
    # segment references
    ('in segment "vip"', InSegment(segment_id="vip")),
    ('not in segment "unsubscribed"', Negation(arg=InSegment(segment_id="unsubscribed"))),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_parses_to_expected_tree(text: str, expected: Condition) -> None:
    tree = parse_formula(text)
    assert tree == expected
    # Exact types too (``==`` would let 1 pass for True and 3 for 3.0).
    assert tree.model_dump_json() == expected.model_dump_json()


CANONICAL = [text for text, _ in CASES if text not in {"performed purchase"}]


@pytest.mark.parametrize("text", CANONICAL)
def test_examples_are_canonical(text: str) -> None:
    assert format_condition(parse_formula(text)) == text


A, B, C, D = (cmp(x, "=", 1) for x in "abcd")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a = 1 and b = 1 and c = 1", AllOf(args=[A, B, C])),
        ("a = 1 or b = 1 or c = 1", AnyOf(args=[A, B, C])),
        ("a = 1 or b = 1 and c = 1", AnyOf(args=[A, AllOf(args=[B, C])])),
        ("a = 1 and b = 1 or c = 1", AnyOf(args=[AllOf(args=[A, B]), C])),
        ("not a = 1 and b = 1", AllOf(args=[Negation(arg=A), B])),
        ("not (a = 1 and b = 1)", Negation(arg=AllOf(args=[A, B]))),
        ("not not a = 1", Negation(arg=Negation(arg=A))),
        ("(a = 1 or b = 1) and c = 1", AllOf(args=[AnyOf(args=[A, B]), C])),
        # an explicit group of the same operator stays nested: text ⇄ tree is injective
        ("(a = 1 and b = 1) and c = 1", AllOf(args=[AllOf(args=[A, B]), C])),
        ("a = 1 or (b = 1 or c = 1) or d = 1", AnyOf(args=[A, AnyOf(args=[B, C]), D])),
        ("((a = 1))", A),
        (
            'a = 1 and (b = 1 or c = 1) and not in segment "x"',
            AllOf(args=[A, AnyOf(args=[B, C]), Negation(arg=InSegment(segment_id="x"))]),
        ),
        # where ends at and/or: the rest belongs to the outer expression
        (
            "performed purchase where a = 1 and b = 1",
            AllOf(args=[Performed(event_type="purchase", where=A), B]),
        ),
        # between's "and" binds before the logical "and"
        (
            "x between 1 and 2 and y between 3 and 4",
            AllOf(args=[Between(field="x", low=1, high=2), Between(field="y", low=3, high=4)]),
        ),
    ],
)
def test_precedence_and_grouping(text: str, expected: Condition) -> None:
    assert parse_formula(text) == expected


def test_keywords_are_case_insensitive_names_are_not() -> None:
    tree = parse_formula(
        'City IN ("Paris") AND Performed purchase WHERE Amount > 3 AT LEAST 2 TIMES '
        'WITHIN LAST 3 DAYS OR NOT IN SEGMENT "x" or vip = TRUE'
    )
    assert format_condition(tree) == (
        'City in ("Paris") and performed purchase where Amount > 3 at least 2 times '
        'within last 3 days or not in segment "x" or vip = true'
    )


def test_int_and_float_stay_distinct() -> None:
    three = parse_formula("x = 3")
    three_float = parse_formula("x = 3.0")
    assert type(three.value) is int  # type: ignore[union-attr]
    assert type(three_float.value) is float  # type: ignore[union-attr]
    assert format_condition(three_float) == "x = 3.0"


def test_strings_use_json_escapes() -> None:
    tree = parse_formula(r'note = "say \"hi\"\n\t\\ \u00e9 é"')
    assert tree.value == 'say "hi"\n\t\\ é é'  # type: ignore[union-attr]
    assert format_condition(tree) == r'note = "say \"hi\"\n\t\\ é é"'


def test_units_singular_plural_and_defaults_normalised() -> None:
    tree = parse_formula("performed purchase at least 1 time within last 1 Week")
    assert tree == Performed(event_type="purchase", window=last(1, "weeks"))
    assert format_condition(tree) == "performed purchase within last 1 week"
    assert format_condition(parse_formula("x < 1 minute ago")) == "x < 1 minute ago"
    assert format_condition(parse_formula("x < 2 minute ago")) == "x < 2 minutes ago"


def test_offsets_normalised() -> None:
    assert format_condition(parse_formula("x > 2026-01-01T09:30+00:00")) == (
        "x > 2026-01-01T09:30:00Z"
    )
    assert format_condition(parse_formula("x > 2026-01-01t09:30:00z")) == (
        "x > 2026-01-01T09:30:00Z"
    )


def test_multi_line_layout_and_whitespace_are_free() -> None:
    text = """
        performed purchase
            where (amount > 10
                   and currency = "GBP")
            within last 7 days
        and   city   =   "Paris"
    """
    assert format_condition(parse_formula(text)) == (
        'performed purchase where (amount > 10 and currency = "GBP") within last 7 days '
        'and city = "Paris"'
    )


def test_keywords_usable_as_names_where_unambiguous() -> None:
    # After a dot only a name can follow, so reserved words need no backticks there;
    # the formatter still quotes them (one canonical spelling).
    tree = parse_formula("account.count >= 3")
    assert tree == cmp("account.count", ">=", 3)
    assert format_condition(tree) == "account.`count` >= 3"


def test_parser_is_reusable_across_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    texts = [text for text, _ in CASES] * 5
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(parse_formula, texts))
    assert results == [expected for _, expected in CASES] * 5
