"""The pure parts of the console's version history (app/api/versions.py:
what changed between versions, the index built from topic records) and of
the list's recent activity (app/api/recent.py: the last hour and day of
the insights series)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from app.api.recent import recent_activity
from app.api.versions import MAX_VERSIONS_KEPT, DefinitionHistory, diff_versions
from app.insights.series import HourCounts, hour_of


@dataclass
class Record:
    value: bytes | None
    timestamp: int
    offset: int


def definition(version: int, **fields: object) -> bytes:
    return orjson.dumps({"id": "s", "name": "S", "formula": "a = 1", "status": "draft",
                         "version": version, "updated_at": f"2026-12-0{version}T00:00:00Z",
                         **fields})


def history(*values: bytes | None) -> DefinitionHistory:
    found = DefinitionHistory("unused:9092", "t.segment-definitions", 1)
    for offset, value in enumerate(values):
        found._add(Record(value, 1_780_000_000_000 + offset, offset), 0)
    return found


def test_versions_say_what_changed() -> None:
    found = history(definition(1), definition(2, status="live"),
                    definition(3, status="live", formula="a = 2", description="d"),
                    definition(4, status="live", formula="a = 2", description="d"),
                    orjson.dumps({"op": "delete", "segment_id": "s"}),
                    definition(5))
    versions = found._versions["s"]
    assert [v["version"] for v in versions] == [1, 2, 3, 4, None, 5]
    assert [v["changes"] for v in versions] == [
        [{"field": "op", "from": None, "to": "create"}],
        [{"field": "status", "from": "draft", "to": "live"}],
        [{"field": "description", "from": "", "to": "d"},
         {"field": "formula", "from": "a = 1", "to": "a = 2"}],
        [],  # written again unchanged
        [{"field": "op", "from": None, "to": "delete"}],
        [{"field": "op", "from": "delete", "to": "create"}]]
    assert versions[0]["written_at"] == "2026-05-28T20:26:40+00:00"
    assert versions[4]["written_at"] == versions[4]["updated_at"]


def test_records_that_are_no_definition_are_left_out() -> None:
    found = history(b"not json", b"[1, 2]", None, orjson.dumps({"name": "no id"}),
                    definition(1))
    assert list(found._versions) == ["s"] and len(found._versions["s"]) == 1


def test_the_index_keeps_the_newest_versions_and_says_so() -> None:
    found = history(*(definition(1, formula=f"a = {i}") for i in range(MAX_VERSIONS_KEPT + 3)))
    kept = found._versions["s"]
    assert len(kept) == MAX_VERSIONS_KEPT and kept[-1]["formula"] == f"a = {MAX_VERSIONS_KEPT + 2}"
    assert found.trimmed("s") and not found.trimmed("other")


def test_diff_of_a_first_version() -> None:
    assert diff_versions(None, {"op": "definition"}) == [
        {"field": "op", "from": None, "to": "create"}]


class Store:
    def __init__(self, hours: dict[str, dict[int, HourCounts]]) -> None:
        self._hours = hours

    def hours(self, segment_id: str, first: int) -> dict[int, HourCounts]:
        return {h: c for h, c in self._hours.get(segment_id, {}).items() if h >= first}


def test_recent_activity_counts_the_current_hour_and_the_last_24() -> None:
    now = datetime(2026, 12, 2, 15, 40, tzinfo=UTC)
    current = hour_of(now)
    store = Store({"a": {current: HourCounts(3, 1), current - 1: HourCounts(2, 0),
                         current - 23: HourCounts(1, 1), current - 24: HourCounts(50, 50),
                         current + 1: HourCounts(7, 7)}})
    answer = recent_activity(store, ["a", "b"], now)
    assert answer["hour_from"] == "2026-12-02T15:00:00+00:00"
    assert answer["day_from"] == "2026-12-01T16:00:00+00:00"
    assert answer["segments"] == [
        {"segment_id": "a", "joins_hour": 3, "leaves_hour": 1, "joins_day": 6, "leaves_day": 2},
        {"segment_id": "b", "joins_hour": 0, "leaves_hour": 0, "joins_day": 0, "leaves_day": 0}]
