"""The clock advance's time parsing and the status table (docs/clock.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.api.errors import ApiError
from app.api.status import parse_clock_time
from app.caught_up import stages
from app.cli_status import _human_status
from app.settings import Settings


@pytest.mark.parametrize(("text", "want"), [
    ("2011-03-01T00:00:00Z", datetime(2011, 3, 1, tzinfo=UTC)),
    ("2011-03-01T01:30:00+01:30", datetime(2011, 3, 1, tzinfo=UTC)),
    (" 2011-03-01T00:00:00.250000+00:00 ", datetime(2011, 3, 1, 0, 0, 0, 250000, tzinfo=UTC)),
])
def test_a_time_with_an_offset_is_read_as_utc(text: str, want: datetime) -> None:
    assert parse_clock_time(text) == want


@pytest.mark.parametrize("bad", ["2011-03-01T00:00:00", "2011-03-01", "soon", "", 5, None])
def test_anything_else_is_refused_with_the_allowed_form(bad: object) -> None:
    with pytest.raises(ApiError) as caught:
        parse_clock_time(bad)
    assert caught.value.status == 422 and "UTC offset" in caught.value.message


def test_the_groups_follow_the_ingest_mode() -> None:
    ingest, evaluator = stages(Settings(topic_prefix="p"))
    assert (ingest.group, evaluator.group) == ("p-ingest", "p-evaluator")
    assert evaluator.topics == ("p.evaluator-input",) and "p.interactions" in ingest.topics
    ingest, evaluator = stages(Settings(topic_prefix="p", ingest="faust"))
    assert (ingest.group, evaluator.group) == ("p", "p-evaluator")


def test_the_status_table() -> None:
    partition = {"clock": "event", "event_clock": "2011-03-01T00:00:00+00:00",
                 "now": "2011-03-01T00:00:00+00:00", "clock_lag_seconds": 12.34,
                 "applied_offset": 41, "committed_offset": 42, "end_offset": 42,
                 "input_lag": 0, "backfills_running": 1, "batches_staged": 3,
                 "batches_settled": 3}
    text = _human_status({
        "clock": "event", "caught_up": False, "backfills_running": 1,
        "ingest": {"group": "p-ingest", "behind": 0},
        "evaluator": {"group": "p-evaluator", "behind": 2},
        "partitions": {"0": partition}, "partitions_answered": [0], "partitions_total": 2,
        "complete": False})
    head, _columns, row, coverage = text.splitlines()
    assert head == "clock: event   caught up: no (ingest 0 behind, evaluator 2 behind)"
    assert row.split() == ["0", "2011-03-01T00:00:00+00:00", "2011-03-01T00:00:00+00:00",
                           "12.3", "41", "42", "42", "0", "1"]
    assert coverage == "(partitions answered: [0] of 2)"


def test_the_status_table_shows_standby_copies_when_there_are_some() -> None:
    text = _human_status({
        "clock": "wall", "caught_up": True, "backfills_running": 0,
        "ingest": {"group": "p-ingest", "behind": 0},
        "evaluator": {"group": "p-evaluator", "behind": 0},
        "partitions": {}, "standbys": {"0": [0], "1": [12, 3]},
        "partitions_answered": [0, 1], "partitions_total": 2, "complete": True})
    assert text.splitlines()[-1] == "standby copies (lag in records): 0: 0, 1: 12/3"
