"""bench/soak.py's plateau verdict: a least-squares line through the last
third of the per-minute RSS, so a sawtooth (memtables filling and flushing,
heap trims) is not read as growth and steady growth is not read as flat."""

from __future__ import annotations

from bench.soak import PLATEAU_MB, plateau


def _samples(rss: list[float]) -> list[dict]:
    return [{"minute": m, "rss_mb": v, "inputs": m * 18_000} for m, v in enumerate(rss)]


def test_a_sawtooth_around_a_level_is_a_plateau() -> None:
    rss = [87.0, 116, 123, 134, 147, 164, 172, 183, 185, 189, 192, 195, 194, 193,
           196, 191, 195, 192, 196, 191, 195, 193, 196, 192, 195, 193]
    verdict = plateau(_samples(rss))
    assert verdict["plateaued"] is True
    assert abs(verdict["last_third_growth_mb"]) < PLATEAU_MB


def test_steady_growth_is_not_a_plateau_whatever_the_last_sample() -> None:
    rss = [87.0] + [100 + 10 * m for m in range(1, 25)]
    rss[-1] = rss[-5]  # one low sample at the end (a trim) does not hide the trend
    verdict = plateau(_samples(rss))
    assert verdict["plateaued"] is False
    assert verdict["mb_per_minute"] > 3


def test_too_few_minutes_to_tell() -> None:
    assert plateau(_samples([87.0, 100, 110]))["plateaued"] is None
