"""Partition placement (runtime/assignor.py): balanced, standbys never on
the active member, sticky, and a failed member's partitions move to the
members that kept standby copies of them."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.assignor import plan_assignment

members_st = st.lists(st.text("abcdefgh", min_size=1, max_size=4), min_size=1, max_size=6,
                      unique=True)


@st.composite
def groups(draw: st.DrawFn) -> tuple[list[int], dict[str, dict[int, int]], int]:
    partitions = list(range(draw(st.integers(1, 24))))
    members = draw(members_st)
    warm = {m: draw(st.dictionaries(st.sampled_from(partitions), st.integers(0, 1000),
                                    max_size=len(partitions))) for m in members}
    return partitions, warm, draw(st.integers(0, 3))


@given(groups())
@settings(max_examples=300, deadline=None)
def test_every_partition_once_balanced_and_standbys_elsewhere(group) -> None:
    partitions, warm, replicas = group
    plan = plan_assignment(partitions, warm, replicas)
    assert set(plan) == set(warm)
    actives = [p for place in plan.values() for p in place.active]
    assert sorted(actives) == partitions
    counts = [len(place.active) for place in plan.values()]
    assert max(counts) - min(counts) <= 1
    expected = min(replicas, len(warm) - 1)
    for p in partitions:
        holders = [m for m, place in plan.items() if p in place.standby]
        assert len(holders) == expected
        assert all(p not in plan[m].active for m in holders)
    cap = expected * math.ceil(len(partitions) / len(warm))
    assert all(len(place.standby) <= cap for place in plan.values())


@given(groups())
@settings(max_examples=200, deadline=None)
def test_the_same_group_gets_the_same_plan_in_any_order(group) -> None:
    partitions, warm, replicas = group
    backwards = dict(reversed(list(warm.items())))
    assert plan_assignment(partitions, warm, replicas) == plan_assignment(
        list(reversed(partitions)), backwards, replicas)


def _copies_after(plan, active_at: int = 100, standby_at: int = 90) -> dict[str, dict[int, int]]:
    return {m: {**{p: standby_at for p in place.standby}, **{p: active_at for p in place.active}}
            for m, place in plan.items()}


@given(st.integers(1, 32), st.integers(1, 6), st.integers(0, 2))
@settings(max_examples=200, deadline=None)
def test_a_rejoining_group_keeps_its_placement(partitions, members, replicas) -> None:
    names = [f"m{i}" for i in range(members)]
    first = plan_assignment(range(partitions), {m: {} for m in names}, replicas)
    again = plan_assignment(range(partitions), _copies_after(first), replicas)
    assert {m: p.active for m, p in again.items()} == {m: p.active for m, p in first.items()}
    assert {m: p.standby for m, p in again.items()} == {m: p.standby for m, p in first.items()}


@given(st.integers(4, 32), st.integers(2, 6), st.data())
@settings(max_examples=200, deadline=None)
def test_a_lost_members_partitions_go_to_their_standby_copies(partitions, members, data) -> None:
    names = [f"m{i}" for i in range(members)]
    before = plan_assignment(range(partitions), {m: {} for m in names}, 1)
    lost = data.draw(st.sampled_from(names))
    copies = _copies_after(before)
    del copies[lost]
    after = plan_assignment(range(partitions), copies, 1)
    quota = math.ceil(partitions / (members - 1))
    for m in copies:  # survivors keep what they evaluated
        assert before[m].active <= after[m].active
    for p in before[lost].active:  # a standby holder takes it over while it has room
        holder = next(m for m in copies if p in before[m].standby)
        owner = next(m for m in copies if p in after[m].active)
        assert owner == holder or len(after[holder].active) >= quota - 1


def test_a_single_member_has_everything_and_no_standbys() -> None:
    plan = plan_assignment(range(8), {"only": {3: 10}}, 1)
    assert plan["only"].active == set(range(8))
    assert plan["only"].standby == set()
