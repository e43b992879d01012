"""Profile / firmographic conditions: every operator, types, missing values."""

from __future__ import annotations

from typing import Any

import pytest

from engine import CompileError, apply
from models.conditions import (
    Between,
    Comparison,
    DateLiteral,
    DateTimeLiteral,
    Exists,
    Negation,
)
from models.inputs import ContactUpsert
from tests.engine_helpers import catalog_of, seg, utc

NOW = utc(2026, 6, 15, 12)
DAY = DateLiteral.model_validate({"date": "2026-01-01"})


def member(cond: Any, attrs: dict[str, Any], *, tz: str = "UTC", now: Any = NOW,
           account: dict[str, Any] | None = None, consent: dict[str, bool] | None = None) -> bool:
    cat = catalog_of(seg("s", cond, timezone=tz, raw=True))
    inp = ContactUpsert(contact_id="c1", attributes=attrs, account_id="a1" if account else None,
                        consent=consent or {})
    tr = apply(None, inp, cat, now, {"a1": account} if account else {})
    assert tr.state is not None
    return tr.state.is_member("s")


@pytest.mark.parametrize(
    ("op", "value", "attr", "expected"),
    [
        ("=", 3, 3, True), ("=", 3, 3.0, True), ("=", 3, "3", False), ("=", 1, True, False),
        ("!=", 3, 4, True), ("!=", 3, "4", False), ("!=", 3, None, False),
        ("<", 3, 2.5, True), ("<", 3, 3, False), ("<=", 3, 3, True), (">", 3, 3, False),
        (">=", 3, 3, True), (">", 3, True, False),
        ("=", "Paris", "Paris", True), ("=", "Paris", "paris", False),
        ("!=", "Paris", "Lyon", True),
        ("<", "b", "a", True), (">=", "b", "b", True), ("<", "b", 1, False),
        ("=", True, True, True), ("=", True, 1, False), ("!=", True, False, True),
        ("!=", True, "x", False),
        ("in", [1, "a"], 1, True), ("in", [1, "a"], "a", True), ("in", [1, "a"], "1", False),
        ("in", [1], True, False), ("in", [True], 1, False), ("in", [1.0], 1, True),
        ("not in", [1, 2], 3, True), ("not in", [1, 2], 2, False), ("not in", [1, 2], "3", False),
        ("not in", [1, 2], None, False),
        ("contains", "ar", "Paris", True), ("contains", "x", "Paris", False),
        ("contains", "vip", ["vip", "new"], True), ("contains", 1, [True, "1"], False),
        ("contains", 1, [1], True), ("contains", "a", 3, False),
        ("starts with", "Pa", "Paris", True), ("starts with", "pa", "Paris", False),
        ("starts with", "Pa", ["Paris"], False),
    ],
)
def test_comparison_is_type_strict(op: str, value: Any, attr: Any, expected: bool) -> None:
    attrs = {} if attr is None else {"f": attr}
    assert member(Comparison(field="f", op=op, value=value), attrs) is expected  # type: ignore[arg-type]


def test_missing_attribute_is_false_except_not_exists_and_negation() -> None:
    for op, v in [("=", 1), ("!=", 1), ("<", 1), ("in", [1]), ("not in", [1]), ("contains", "a")]:
        assert member(Comparison(field="f", op=op, value=v), {}) is False  # type: ignore[arg-type]
    assert member(Exists(field="f", negated=True), {}) is True
    assert member(Exists(field="f"), {}) is False
    assert member(Exists(field="f"), {"f": ""}) is True
    assert member(Negation(arg=Comparison(field="f", op="=", value=1)), {}) is True


def test_nested_paths_account_and_consent() -> None:
    assert member(Comparison(field="address.city", op="=", value="Nice"),
                  {"address": {"city": "Nice"}})
    assert not member(Comparison(field="address.city", op="=", value="Nice"), {"address": "Nice"})
    assert member(Comparison(field="account.size", op=">", value=100), {},
                  account={"size": 500})
    assert not member(Comparison(field="account.size", op=">", value=100), {})
    assert member(Exists(field="account.size", negated=True), {})
    assert member(Comparison(field="consent.email", op="=", value=True), {},
                  consent={"email": True})


def test_between_inclusive_and_typed() -> None:
    b = Between(field="age", low=18, high=30)
    assert member(b, {"age": 18}) and member(b, {"age": 30}) and member(b, {"age": 25.5})
    assert not member(b, {"age": 31}) and not member(b, {"age": "20"})
    assert member(Between(field="n", low="b", high="d"), {"n": "c"})
    with pytest.raises(CompileError):
        catalog_of(seg("s", Between(field="n", low=1, high="z"), raw=True))
    with pytest.raises(CompileError):
        catalog_of(seg("s", Between(field="n", low=True, high=False), raw=True))


def test_date_literals_compare_calendar_days_in_segment_zone() -> None:
    d = DateLiteral.model_validate({"date": "2026-06-15"})
    eq = Comparison(field="d", op="=", value=d)
    assert member(eq, {"d": "2026-06-15"})
    assert member(eq, {"d": "2026-06-15T23:30:00+00:00"})
    # 23:30 UTC on the 15th is already the 16th in Paris
    assert not member(eq, {"d": "2026-06-15T23:30:00+00:00"}, tz="Europe/Paris")
    assert member(Comparison(field="d", op=">", value=d), {"d": "2026-06-15T23:30:00Z"},
                  tz="Europe/Paris")
    assert member(Comparison(field="d", op="<", value=d), {"d": "2026-06-14"})
    assert not member(Comparison(field="d", op="<", value=d), {"d": "2026-06-15T00:00:00Z"})
    assert member(Comparison(field="d", op="<=", value=d), {"d": "2026-06-15T23:59:59Z"})
    assert not member(eq, {"d": "not a date"}) and not member(eq, {"d": 20260615})
    # a naive datetime value is read in the segment's zone
    assert member(eq, {"d": "2026-06-15T23:30:00"}, tz="Europe/Paris")


def test_datetime_literals_compare_instants_or_days() -> None:
    t = DateTimeLiteral.model_validate({"datetime": "2026-06-15T10:00:00+00:00"})
    assert member(Comparison(field="d", op="<", value=t), {"d": "2026-06-15T09:59:59Z"})
    assert not member(Comparison(field="d", op="<", value=t), {"d": "2026-06-15T10:00:00Z"})
    assert member(Comparison(field="d", op="=", value=t), {"d": "2026-06-15T12:00:00+02:00"})
    # a date-only value against an instant: calendar day granularity
    assert member(Comparison(field="d", op="=", value=t), {"d": "2026-06-15"})
    assert member(Comparison(field="d", op="<", value=t), {"d": "2026-06-14"})


def test_compile_errors() -> None:
    bad = [
        Comparison(field="f", op="contains", value=DAY),
        Comparison(field="f", op=">", value=[1]),
        Comparison(field="f", op="in", value=[DAY]),
        Comparison(field="f", op=">", value=False),
    ]
    for cond in bad:
        with pytest.raises(CompileError, match="segment 's'"):
            catalog_of(seg("s", cond, raw=True))  # type: ignore[arg-type]
