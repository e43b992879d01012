"""The due index answers exactly like a plain dict of due times, and its
memory stays proportional to the contacts that are due, not to the number
of times their due times moved (the soak's growth)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.partition_tables import DueIndex


class _Table(dict):
    """A dict standing in for a Faust table (the scan reads it directly)."""

    data = None


def test_moving_due_times_does_not_grow_the_heap() -> None:
    index = DueIndex(_Table(), partitions=1)
    due: dict[str, int] = {}
    for step in range(50_000):  # every input moves a contact's due time
        contact = f"c{step % 100}"
        new = 10**9 + step
        index.set(0, contact, due.get(contact), new)
        due[contact] = new
    assert len(index) <= 2 * 1024
    assert sorted(index.pop_due(0, 10**12, 1000)) == sorted(due)
    assert len(index) == 0


ops = st.lists(st.tuples(st.sampled_from(["set", "clear", "pop"]),
                         st.integers(0, 30), st.integers(0, 3000)), max_size=3000)


@settings(max_examples=60, deadline=None)
@given(ops)
def test_pops_equal_a_naive_dict(steps: list[tuple[str, int, int]]) -> None:
    index = DueIndex(_Table(), partitions=1)
    index._MIN_REBUILD = 8  # compact often
    naive: dict[str, int] = {}
    for op, n, at in steps:
        contact = f"c{n}"
        if op == "set":
            index.set(0, contact, naive.get(contact), at)
            naive[contact] = at
        elif op == "clear":
            index.set(0, contact, naive.pop(contact, None), None)
        else:
            popped = index.pop_due(0, at, 10**6)
            expected = sorted(c for c, t in naive.items() if t <= at)
            assert sorted(popped) == expected
            for c in expected:
                del naive[c]
        assert len(index) <= max(8, 2 * len(naive)) + 1
