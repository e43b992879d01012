"""The insights series (app/insights): the fold over a real RocksDB store,
fed in random batches with restarts in between, against a naive count over
the same change stream, for random streams with replays (duplicates) and
pairs interleaved out of time order; plus the edge cases one by one."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from app.insights.series import HourCounts, hour_of, parse_change, points
from app.insights.store import InsightsStore
from tests.insights_naive import naive, naive_points

BASE = datetime(2026, 3, 1, 5, 0, tzinfo=UTC)
SEGMENTS = ["s0", "s.1", "s-2"]
CONTACTS = [f"c{n}" for n in range(5)]
CAUSES = ["interaction", "contact_update", "time", "definition_change", "segment_change"]


def change(segment: str, contact: str, joined: bool, at: datetime, cause: str,
           sequence: int) -> dict[str, Any]:
    return {"segment_id": segment, "contact_id": contact,
            "change": "joined" if joined else "left", "at": at.isoformat(),
            "cause": {"kind": cause}, "segment_version": 1, "sequence": sequence}


# -- random change streams, as the evaluator writes them (and replays them) ------------

@st.composite
def pair_history(draw: st.DrawFn, segment: str, contact: str) -> list[dict[str, Any]]:
    """One pair's changes in order: alternating from sequence 1, times not
    decreasing; sometimes an erasure (a left at the next even number, a gap
    for a former member), after which the contact comes back from 1."""
    out: list[dict[str, Any]] = []
    at = BASE + timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)))
    seq = 0
    for _ in range(draw(st.integers(0, 7))):
        at += timedelta(minutes=draw(st.integers(0, 300)))
        if seq and draw(st.integers(0, 6)) == 0:
            erase = seq + 1 if seq % 2 else seq + 2
            out.append(change(segment, contact, False, at, "erasure", erase))
            seq = 0
            continue
        seq += 1
        out.append(change(segment, contact, seq % 2 == 1, at, draw(st.sampled_from(CAUSES)),
                          seq))
    return out


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Pairs' histories interleaved at random (so times go back and forth
    across pairs), with replays: a run of a pair's earlier changes sent again
    later (what a crash before a commit does)."""
    histories = [draw(pair_history(s, c)) for s in SEGMENTS for c in CONTACTS
                 if draw(st.booleans())]
    queues = [list(h) for h in histories if h]
    log: list[dict[str, Any]] = []
    while queues:
        index = draw(st.integers(0, len(queues) - 1))
        log.append(queues[index].pop(0))
        if not queues[index]:
            queues.pop(index)
        if draw(st.integers(0, 9)) == 0:  # a replay of the last few changes
            back = draw(st.integers(1, 4))
            log.extend(log[-back:])
    return log


def fold_in_batches(path: Path, stream: list[dict[str, Any]], cuts: list[int],
                    restarts: list[bool]) -> InsightsStore:
    """The stream as two partitions' records (by contact), folded batch by
    batch; the store reopened (a worker restart) where ``restarts`` says."""
    records = []
    offsets = [0, 0]
    for c in stream:
        partition = int(c["contact_id"][1:]) % 2
        records.append((partition, offsets[partition], orjson.dumps(c)))
        offsets[partition] += 1
    store = InsightsStore(path)
    edges = sorted({0, len(records), *(cut % (len(records) + 1) for cut in cuts)})
    for n, (lo, hi) in enumerate(pairwise(edges)):
        stored = store.offsets()
        # What a resumed consumer reads: from the stored offsets on.
        batch = [r for r in records[lo:hi] if r[1] >= stored.get(r[0], 0)]
        store.fold(batch)
        if restarts[n % len(restarts)]:
            store.close()
            store = InsightsStore(path)
    return store


@settings(max_examples=80, deadline=None)
@given(stream=streams(), cuts=st.lists(st.integers(0, 200), max_size=6),
       restarts=st.lists(st.booleans(), min_size=1, max_size=6),
       step=st.sampled_from(["hour", "day"]),
       window=st.one_of(st.none(), st.tuples(st.integers(-30, 120), st.integers(0, 120))))
def test_series_equals_a_naive_count(stream, cuts, restarts, step, window) -> None:
    hours = [hour_of(datetime.fromisoformat(c["at"])) for c in stream] or [hour_of(BASE)]
    first, last = min(hours) - 3, max(hours) + 3  # everything, or a window of it:
    if window is not None:  # changes before it, in it and after it
        first = min(hours) + window[0]
        last = first + window[1]
    _, sizes = naive(stream)
    with tempfile.TemporaryDirectory() as tmp:
        store = fold_in_batches(Path(tmp) / "insights", stream, cuts, restarts)
        try:
            for segment in SEGMENTS:
                got = points(store.hours(segment, first - first % 24), store.total(segment) or 0,
                             first, last, step)
                assert got == naive_points(stream, segment, first, last, step), segment
                assert (store.total(segment) or 0) == sizes[segment]
                if not any(c["cause"]["kind"] == "erasure" for c in stream):
                    # Sizes at the end of each hour are never negative. With
                    # erasures they can be: the documented filter resets a
                    # pair's mark at an erasure, so a replay of the erasure
                    # and the comeback after it counts them again
                    # (docs/insights.md, "Exactness").
                    assert all(p["size"] >= 0 for p in got)
        finally:
            store.close()


def test_duplicates_are_counted_once_and_the_series_survives_a_restart(tmp_path) -> None:
    at = BASE + timedelta(minutes=10)
    join = orjson.dumps(change("s", "c1", True, at, "interaction", 1))
    leave = orjson.dumps(change("s", "c1", False, at + timedelta(hours=2), "time", 2))
    store = InsightsStore(tmp_path / "i")
    store.fold([(0, 0, join), (0, 1, join), (0, 2, leave)])
    store.fold([(0, 1, join), (0, 2, leave)])  # replayed after a crash
    store.close()
    store = InsightsStore(tmp_path / "i")
    h = hour_of(at)
    series = points(store.hours("s", h), store.total("s") or 0, h, h + 3, "hour")
    assert [(p["joins"], p["leaves"], p["size"]) for p in series] == [
        (1, 0, 1), (0, 0, 1), (0, 1, 0), (0, 0, 0)]
    assert series[0]["causes"] == {"interaction": {"joined": 1, "left": 0}}
    assert series[2]["causes"] == {"time": {"joined": 0, "left": 1}}
    assert store.offsets() == {0: 3}
    store.close()


def test_an_erasure_of_a_former_member_is_not_a_leave_and_resets_the_pair(tmp_path) -> None:
    at = BASE
    stream = [change("s", "c", True, at, "contact_update", 1),
              change("s", "c", False, at, "contact_update", 2),
              change("s", "c", False, at, "erasure", 4),        # not a member: no leave
              change("s", "c", True, at, "contact_update", 1)]  # back, from 1: a join
    store = InsightsStore(tmp_path / "i")
    store.fold([(0, n, orjson.dumps(c)) for n, c in enumerate(stream)])
    h = hour_of(at)
    [point] = points(store.hours("s", h), store.total("s") or 0, h, h, "hour")
    assert (point["joins"], point["leaves"], point["size"]) == (2, 1, 1)
    assert "erasure" not in point["causes"]
    store.close()


def test_unreadable_records_are_skipped_and_their_offsets_passed(tmp_path) -> None:
    store = InsightsStore(tmp_path / "i")
    good = orjson.dumps(change("s", "c", True, BASE, "interaction", 1))
    applied, dropped, unreadable = store.fold(
        [(1, 0, b"not json"), (1, 1, b'{"segment_id": "s"}'), (1, 2, None), (1, 3, good),
         (1, 4, orjson.dumps({**orjson.loads(good), "at": "2026-03-01T05:00:00"}))])
    assert (applied, dropped, unreadable) == (1, 0, 4)
    assert store.offsets() == {1: 5}
    store.close()
    assert parse_change(b"[]") is None


def test_hours_older_than_the_retention_are_pruned_sizes_unchanged(tmp_path) -> None:
    store = InsightsStore(tmp_path / "i", retention_days=2)
    old = orjson.dumps(change("s", "a", True, BASE, "interaction", 1))
    new = orjson.dumps(change("s", "b", True, BASE + timedelta(days=5), "interaction", 1))
    store.fold([(0, 0, old)])
    store.fold([(0, 1, new)])
    h = hour_of(BASE)
    assert hour_of(BASE) not in store.hours("s", h - 1)  # pruned: 5 days > 2
    series = points(store.hours("s", h), store.total("s") or 0, h + 5 * 24 - 1,
                    h + 5 * 24, "hour")
    assert [p["size"] for p in series] == [1, 2]  # the old join still counts in the size
    store.close()


def test_hour_counts_round_trip() -> None:
    counts = HourCounts()
    counts.add(True, "time")
    counts.add(False, "time")
    assert HourCounts.decode(counts.encode()) == counts


def test_a_fold_begun_after_retention_says_so_across_restarts(tmp_path) -> None:
    store = InsightsStore(tmp_path / "i")
    assert store.history_complete()
    store.mark_history_incomplete()
    store.close()
    store = InsightsStore(tmp_path / "i")
    assert not store.history_complete()
    store.close()


def test_every_changes_format_is_read_as_the_same_change() -> None:
    """The fold reads native values, binary CloudEvents (the same bytes) and
    structured ones (the change is the event's data)."""
    from models.change_events import CHANGES_FORMATS, encode_change
    from models.changes import MembershipChange

    left = MembershipChange.model_validate({
        "segment_id": "paris", "contact_id": "c1", "change": "left",
        "at": datetime(2026, 1, 1, 5, tzinfo=UTC), "cause": {"kind": "time"},
        "segment_version": 2, "sequence": 4})
    parsed = {fmt: parse_change(encode_change(left, fmt, "t")[1]) for fmt in CHANGES_FORMATS}
    assert len(parsed) == 3 and None not in parsed.values()
    assert len(set(parsed.values())) == 1
