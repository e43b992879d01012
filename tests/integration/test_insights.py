"""Insights on the real broker (issue #15): inputs spread over several hours
(event clock) make joins and leaves of two segments; the series the API
serves equals an independent fold of the membership-changes topic, per
hour and per day, causes included; it survives a kill -9 and restart of
the worker (the same series at once, then more inputs counted once: the
fold resumed from its stored offsets), and a second worker with a fresh
data directory answers the same series (each worker folds the whole
topic). The overlap of the two segments matches the members, from either
worker (gathered across them)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from app.client import Publisher
from models.inputs import ContactDelete, ContactUpsert
from models.segments import SegmentDefinition
from tests.insights_naive import naive_points
from tests.integration.api_helpers import AUTH, TOKEN, Api, eventually
from tests.integration.conftest import free_port
from tests.integration.helpers import fold, wait_segment_applied

pytestmark = pytest.mark.kafka

T0 = datetime(2026, 3, 1, 8, 10, tzinfo=UTC)
ROUTE = "/segments/{segment_id}/insights"
SEGMENTS = [
    SegmentDefinition(id="adults", name="Adults", status="live", formula="age >= 18"),
    SegmentDefinition(id="parisians", name="Parisians", status="live",
                      formula='city = "Paris"'),
]


def upsert(contact: str, hours: float, **attributes) -> ContactUpsert:
    return ContactUpsert(contact_id=contact, attributes=attributes,
                         updated_at=T0 + timedelta(hours=hours))


FIRST = [
    upsert("c0", 0, age=30, city="Paris"), upsert("c1", 0, age=41, city="Lyon"),
    upsert("c2", 0, age=15, city="Paris"), upsert("c3", 0.5, age=52, city="Paris"),
    upsert("c4", 1, age=23, city="Nice"), upsert("c5", 1, age=64, city="Paris"),
    upsert("c1", 2, age=12, city="Lyon"),       # leaves adults
    upsert("c6", 2, age=33, city="Paris"),
    upsert("c0", 4, age=30, city="Lyon"),       # leaves parisians
    ContactDelete(contact_id="c3"),             # erasure: leaves both
    upsert("c1", 5, age=31, city="Lyon"),       # joins adults again
]
AFTER_RESTART = [
    upsert("c7", 27, age=40, city="Paris"),     # the next day
    upsert("c5", 28, age=64, city="Nice"),      # leaves parisians
]
WINDOW = {"from": (T0 - timedelta(hours=2)).isoformat(),
          "to": (T0 + timedelta(hours=30)).isoformat()}


@pytest.fixture
def settings(settings):
    settings.api_token = TOKEN
    return settings.model_copy(update={"clock": "event"})


async def publish(settings, inputs) -> None:
    async with Publisher(settings) as pub:
        for item in inputs:
            await pub.send(item)
        await pub.flush()


def expected(changes, segment: str, step: str) -> list[dict]:
    first = int(datetime.fromisoformat(WINDOW["from"]).timestamp() // 3600)
    last = int(datetime.fromisoformat(WINDOW["to"]).timestamp() // 3600)
    return naive_points(changes, segment, first, last, step)


async def series(api: Api, segment: str, step: str) -> dict:
    _, body = await api.call("GET", f"/segments/{segment}/insights",
                             params={**WINDOW, "step": step}, route=ROUTE, expect=200)
    return body


async def matches_topic(api: Api, changes) -> dict[tuple[str, str], dict]:
    """Wait until every series equals the independent fold of the topic."""
    values = await changes.settle()
    got = {}
    for segment in ("adults", "parisians"):
        for step in ("hour", "day"):
            want = expected(values, segment, step)
            body = await eventually(lambda s=segment, st=step: series(api, s, st),
                                    lambda b, w=want: b["points"] == w, timeout=30)
            assert body["behind"] == 0 and body["history_complete"] is True
            got[(segment, step)] = body
    return got


async def test_series_matches_the_topic_and_survives_a_restart(
        settings, worker_factory, reader, tmp_path):
    first = worker_factory(settings)
    first.start()
    await first.wait_ready()
    changes = await reader(settings.topics.membership_changes)
    await publish(settings, SEGMENTS)
    for segment in SEGMENTS:
        await wait_segment_applied(first, segment.id, 1, settings.partitions)
    await publish(settings, FIRST)

    async with aiohttp.ClientSession(headers=AUTH) as session:
        api = Api(session, first.url)
        await api.load_openapi()
        before = await matches_topic(api, changes)
        hourly = before[("adults", "hour")]
        assert len(hourly["points"]) == 33  # from T0 - 2 h to T0 + 30 h, hourly
        assert hourly["size"] == 5  # c0, c1 (back in), c4, c5, c6; c3 erased, c2 a minor
        assert hourly["causes"]["erasure"] == {"joined": 0, "left": 1}
        assert sum(p["joins"] for p in hourly["points"]) == hourly["joins"] == 7
        assert before[("parisians", "day")]["leaves"] == 2  # c0 moved, c3 erased
        members = fold(changes.values())
        adults = {c for s, c in members if s == "adults"}
        parisians = {c for s, c in members if s == "parisians"}
        _, overlap = await api.call(
            "GET", "/segments/adults/overlap", params={"with": "parisians"},
            route="/segments/{segment_id}/overlap", expect=200)
        assert overlap["segments"] == ["adults", "parisians"]
        assert overlap["matrix"] == [[len(adults), len(adults & parisians)],
                                     [len(adults & parisians), len(parisians)]]
        await api.call("GET", "/segments/nope/insights", expect=404)
        await api.call("GET", "/segments/adults/insights", params={"step": "week"},
                       expect=400)

    # kill -9, restart on the same data directory: the same series, from disk.
    first.kill()
    restarted = worker_factory(settings)
    restarted.start()
    await restarted.wait_ready()
    async with aiohttp.ClientSession(headers=AUTH) as session:
        api = Api(session, restarted.url)
        await api.load_openapi()
        again = await eventually(lambda: series(api, "adults", "hour"),
                                 lambda b: b["behind"] == 0, timeout=30)
        assert again["points"] == hourly["points"]
        log = restarted.log_path.read_text(errors="replace")
        resumed = re.findall(r"insights: folding \S+ from (\{[^}]*\})", log)
        assert resumed and resumed[-1] != "{0: 0, 1: 0}", resumed  # not refolded from 0

        # More inputs after the restart: counted once, on top of the stored series.
        await publish(settings, AFTER_RESTART)
        after = await matches_topic(api, changes)
        assert after[("parisians", "hour")]["size"] == before[("parisians", "hour")]["size"]
        assert after[("adults", "hour")]["size"] == hourly["size"] + 1

    # A second worker with a fresh disk folds the whole topic: the same series
    # (and the overlap, gathered from both workers' partitions).
    other = worker_factory(settings.model_copy(update={
        "data_dir": tmp_path / "other-data", "web_port": free_port()}))
    other.start()
    await other.wait_ready()
    async with aiohttp.ClientSession(headers=AUTH) as session:
        here, there = Api(session, restarted.url), Api(session, other.url)
        for api in (here, there):
            await api.load_openapi()
        for segment in ("adults", "parisians"):
            mine = await eventually(lambda s=segment: series(there, s, "hour"),
                                    lambda b, s=segment: b["points"] == after[(s, "hour")][
                                        "points"], timeout=60)
            assert mine["size"] == after[(segment, "hour")]["size"]

        async def full_overlap(api: Api) -> dict:
            return (await api.call("GET", "/segments/parisians/overlap",
                                   params={"with": "adults"}, expect=200))[1]

        want = await eventually(lambda: full_overlap(here), lambda b: b["complete"])
        assert (await eventually(lambda: full_overlap(there), lambda b: b["complete"])
                )["matrix"] == want["matrix"]
