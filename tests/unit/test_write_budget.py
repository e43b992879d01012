"""The definition write budget: charged by formula size, refilled over time."""

from __future__ import annotations

from app.api.budget import MIN_COST, WriteBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_small_definitions_go_in_bursts_big_ones_two_a_second() -> None:
    clock = Clock()
    budget = WriteBudget(16_384, clock)
    small = 'city = "Paris"'
    assert [budget.take(small) for _ in range(16_384 // MIN_COST)] == [0.0] * 64
    assert budget.take(small) > 0  # the 65th within the same instant waits
    clock.now += 1.0
    big = "x" * 8_192
    assert budget.take(big) == 0.0 and budget.take(big) == 0.0
    wait = budget.take(big)
    assert 0.49 < wait <= 0.5  # half a second refills one maximal formula
    clock.now += wait
    assert budget.take(big) == 0.0


def test_a_refused_write_is_not_charged() -> None:
    clock = Clock()
    budget = WriteBudget(8_192, clock)
    assert budget.take("x" * 8_192) == 0.0
    for _ in range(5):
        assert budget.take("x" * 8_192) > 0
    clock.now += 1.0
    assert budget.take("x" * 8_192) == 0.0
