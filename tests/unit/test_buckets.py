"""Splits, holdouts and the control group (issue 16 item 4).

``bucket(seed, contact_id)`` is SHA-256 of ``seed/contact_id``, its first 8
bytes big-endian, modulo 10,000 (engine/buckets.py, docs/formula.md). The
known values below were computed with coreutils ``sha256sum``, not Python:
``printf 'spring-test/c1' | sha256sum`` starts with ``4017621295ad7a6a``,
and ``0x4017621295ad7a6a % 10000 == 618``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from app.settings import Settings
from engine import Catalog, Limits, Tick, apply, explain
from engine.buckets import BUCKETS, ControlGroup, bucket
from models.conditions import Bucket, Comparison, InSegment, Negation
from models.formula import FormulaError, format_condition, parse_formula
from models.inputs import StaticEdit
from models.segments import SegmentDefinition
from tests.engine_helpers import Harness, catalog_of, interaction, seg, upsert, utc
from tests.naive import naive_bucket

NOW = utc(2026, 3, 1, 12)

# (seed, contact id, bucket): sha256sum's first 16 hex digits, modulo 10000
KNOWN = [
    ("spring-test", "c1", 618),  # 4017621295ad7a6a
    ("spring-test", "c2", 9007),  # 1943af23cd6a383f
    ("holdout", "alice@example.com", 1757),  # 8b8001d4504132ed
    ("holdout-2026", "0b7e4c1e-8f3a-4d2b-9c61-2f5a8e7d3b10", 9175),  # 95d95713fb356017
    ("a", "c1", 329),  # 3e17b50e31e9c3d9
    ("b:2", "u-7", 1903),  # 9fb85b29bc3a886f
]

IDS = [f"c{i}" for i in range(100_000)]

# Chi-square over 10,000 buckets has 9,999 degrees of freedom: mean 9,999,
# standard deviation 141.4. The ids are fixed, so the statistic is a fixed
# number (9,943.2 for "spring-test"); the bounds are about ±3.1 sigma (two-
# sided p ~ 0.002 for a good hash). Too low fails too: sequential ids modulo
# 10,000 are "perfectly" uniform (0.0) and no hash at all.
CHI2_LOW, CHI2_HIGH = 9_560.0, 10_440.0


def _chi2(buckets: list[int], k: int = BUCKETS) -> float:
    counts = [0] * k
    for b in buckets:
        counts[b] += 1
    expected = len(buckets) / k
    return sum((c - expected) ** 2 / expected for c in counts)


@pytest.mark.parametrize(("seed", "cid", "expected"), KNOWN)
def test_bucket_known_values(seed: str, cid: str, expected: int) -> None:
    assert bucket(seed, cid) == expected
    assert naive_bucket(seed, cid) == expected


def test_buckets_are_uniform_chi_square() -> None:
    chi2 = _chi2([bucket("spring-test", cid) for cid in IDS])
    assert CHI2_LOW < chi2 < CHI2_HIGH, chi2
    # a 10 % split is 10 % (binomial sd 95 on 100k: within 4 sd)
    assert abs(sum(bucket("spring-test", cid) < 1000 for cid in IDS) - 10_000) < 380


Mutant = Callable[[str, str], int]
BROKEN: dict[str, Mutant] = {
    # 65,536 values onto 10,000 buckets: the low 5,536 get 7/65536, the rest 6
    "16-bit digest": lambda s, c: int.from_bytes(
        hashlib.sha256(f"{s}/{c}".encode()).digest()[:2], "big") % BUCKETS,
    "byte sum": lambda s, c: sum(f"{s}/{c}".encode()) % BUCKETS,
    "id number": lambda s, c: int(c[1:]) % BUCKETS,
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_the_threshold_fails_broken_hashes(name: str) -> None:
    chi2 = _chi2([BROKEN[name]("spring-test", cid) for cid in IDS])
    assert not CHI2_LOW < chi2 < CHI2_HIGH, (name, chi2)


def test_seeds_split_independently() -> None:
    """Deciles of two seeds cross-tabulated: 100 cells of 1,000 expected;
    chi-square (99 df: mean 99, sd 14) well under 99 + 4 sd. The same seed
    twice (fully dependent) is far above it."""
    def cross(a: str, b: str) -> float:
        cells = [0] * 100
        for cid in IDS:
            cells[bucket(a, cid) // 1000 * 10 + bucket(b, cid) // 1000] += 1
        return sum((c - 1000) ** 2 / 1000 for c in cells)

    assert cross("spring-test", "holdout") < 155
    assert cross("spring-test", "spring-test") > 10_000


# -- formula ------------------------------------------------------------------


def test_formula_round_trip_and_refusals() -> None:
    tree = parse_formula('bucket("spring-test") < 1000 and not bucket("b:2") >= 5000')
    assert tree.args[0] == Bucket(seed="spring-test", op="<", value=1000)  # type: ignore[union-attr]
    text = format_condition(tree)
    assert text == 'bucket("spring-test") < 1000 and not bucket("b:2") >= 5000'
    assert parse_formula(text) == tree
    assert parse_formula('BUCKET ( "x" ) = 3') == Bucket(seed="x", op="=", value=3)
    # a field named bucket is still a field (bucket is a keyword only before "(")
    assert parse_formula("bucket = 3") == Comparison(field="bucket", op="=", value=3)
    assert format_condition(Comparison(field="bucket", op="=", value=3)) == "bucket = 3"
    for text, column, fragment in [
        ('bucket("x") < 10001', 15, "whole number from 0 to 10000"),
        ('bucket("x") < 1.5', 15, "whole number from 0 to 10000"),
        ('bucket("x") in (1, 2)', 16, '"in"'),
        ('bucket("a b") < 5', 8, "a bucket seed is"),
        ('bucket("") < 5', 8, "a bucket seed is"),
        ('performed purchase where bucket("x") < 5 ever', 20, "where"),
    ]:
        with pytest.raises(FormulaError) as err:
            parse_formula(text)
        assert (err.value.column, fragment in str(err.value)) == (column, True), str(err.value)
    with pytest.raises(ValueError):
        Bucket(seed="x", op="<", value=True)  # type: ignore[arg-type]


def test_definition_json_round_trip() -> None:
    d = SegmentDefinition(id="spring-a", name="A", formula='bucket("spring-test") < 5000')
    again = SegmentDefinition.model_validate_json(d.model_dump_json())
    assert again.condition == Bucket(seed="spring-test", op="<", value=5000)


# -- engine -------------------------------------------------------------------

A = Bucket(seed="spring-test", op="<", value=5000)  # c1: 618 (in), c2: 9007 (out)


def test_bucket_segment_is_decided_when_the_contact_is_created() -> None:
    cat = catalog_of(seg("a", A), seg("b", Negation(arg=A)),
                     seg("a-paris", InSegment(segment_id="a")))
    assert set(cat.index.new_contact) == {"a", "b", "a-paris"}
    for cid, joined in [("c1", {"a", "a-paris"}), ("c2", {"b"})]:
        h = Harness(cat)
        assert h.joined(h(upsert(cid), NOW)) == joined
        # constant per contact: later inputs and time change nothing
        assert h(upsert(cid, city="Paris"), NOW) == []
        assert h(interaction("purchase", NOW, cid), NOW) == []
        assert h(Tick(), utc(2027, 1, 1)) == []
        assert h.state is not None and h.state.next_due is None
    h = Harness(cat)
    h(StaticEdit(segment_id="x", contact_id="c1", op="add"), NOW)  # any first input
    assert h.members() == {"a", "a-paris"}


def test_explain_shows_the_bucket() -> None:
    h = Harness(catalog_of(seg("a", A)))
    h(upsert("c2"), NOW)
    text = str(explain(h.state, "a", h.catalog, NOW, {}))
    assert 'bucket("spring-test") < 5000  (seen=9007, threshold=5000)' in text


# -- the control group ----------------------------------------------------------

HOLDOUT = ControlGroup("holdout", 2000)  # 20 %: alice (1757) is in it, c1 and c2 not


def test_control_group_setting() -> None:
    assert ControlGroup.parse("holdout:20") == HOLDOUT
    assert ControlGroup.parse("h:ol:d:0.25") == ControlGroup("h:ol:d", 25)
    assert ControlGroup.parse("x:100").buckets == BUCKETS
    for bad in ["holdout", "holdout:", ":5", "x:101", "x:5.123", "x:-1", "a b:5"]:
        with pytest.raises(ValueError):
            ControlGroup.parse(bad)
    assert Settings(control_group="holdout:20").limits.control_group == HOLDOUT
    assert Settings().limits.control_group is None
    with pytest.raises(ValueError, match="seed:percent"):
        Settings(control_group="five percent")


def _in_control(cid: str) -> bool:
    return bucket("holdout", cid) < 2000


def test_control_group_members_join_nothing_and_explain_says_why() -> None:
    assert _in_control("alice@example.com") and not _in_control("c1")
    defs = [seg("all", Comparison(field="age", op=">=", value=0)),
            seg("vip", None, kind="static", include=["alice@example.com", "c1"]),
            seg("nobody-in-all", Negation(arg=InSegment(segment_id="all")))]
    cat = catalog_of(*defs, limits=Limits(control_group=HOLDOUT))
    alice, c1 = Harness(cat), Harness(cat)
    assert alice(upsert("alice@example.com", age=30), NOW) == []
    assert alice(StaticEdit(segment_id="vip", contact_id="alice@example.com", op="add"),
                 NOW) == []
    assert alice.state is not None and alice.state.memberships() == {}
    assert c1.joined(c1(upsert("c1", age=30), NOW)) == {"all", "vip"}
    report = explain(alice.state, "all", cat, NOW, {})
    assert report.result is False
    text = str(report)
    assert "contact is in the control group" in text and 'bucket("holdout") < 2000' in text
    assert "age >= 0" in text  # what the contact would be, still shown
    assert "control group" not in str(explain(c1.state, "all", cat, NOW, {}))


def test_members_from_before_the_control_group_leave_at_their_next_step() -> None:
    defs = [seg("all", Comparison(field="age", op=">=", value=0)),
            seg("other", Comparison(field="city", op="=", value="Paris"))]
    h = Harness(catalog_of(*defs))
    h(upsert("alice@example.com", age=30, city="Paris"), NOW)
    assert h.members() == {"all", "other"}
    h.catalog = catalog_of(*defs, limits=Limits(control_group=HOLDOUT))
    changes = h(upsert("alice@example.com", name="A"), NOW)
    assert {(c.segment_id, c.change, c.cause.kind) for c in changes} == {
        ("all", "left", "contact_update"), ("other", "left", "contact_update")}
    assert h.members() == set()


def test_control_group_is_deterministic_across_catalogs() -> None:
    """Another worker, a restart, a replay: the same setting gives the same
    answer (a pure function of the seed and the contact id)."""
    defs = [seg("all", Comparison(field="age", op=">=", value=0))]
    runs = []
    for _ in range(2):
        cat = Catalog.empty(Limits(control_group=ControlGroup.parse("holdout:20")))
        for d in defs:
            cat = cat.put(d)
        joined = set()
        for i in range(300):
            tr = apply(None, upsert(f"c{i}", age=1), cat, NOW, {})
            joined |= {c.contact_id for c in tr.changes}
        runs.append(joined)
    assert runs[0] == runs[1]
    assert runs[0] == {f"c{i}" for i in range(300) if not _in_control(f"c{i}")}
    assert 40 < 300 - len(runs[0]) < 80  # about 20 %
