"""The clock contract on the real broker (docs/clock.md): ``segmentflow
clock advance`` moves every partition's event clock, ``GET /status`` and
``segmentflow status`` show clocks, lag and offsets, explain shows the clock
it used, the metrics carry the clocks, and ``segmentflow status
--wait-caught-up`` exits 0 once caught up and 4 when a stopped worker leaves
inputs behind."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.client import Publisher
from app.settings import Settings
from models.inputs import ContactUpsert, Interaction
from models.segments import SegmentDefinition
from tests.integration.api_helpers import AUTH, TOKEN, Api
from tests.integration.caught_up import end_offsets, wait_caught_up
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.kafka

RECENT = SegmentDefinition(id="recent-buyers", name="recent buyers", status="live",
                           formula="performed purchase within last 30 days")
BOUGHT = datetime(2011, 1, 10, 12, 0, tzinfo=UTC)


async def segmentflow(settings: Settings, *args: str, url: str | None = None
                      ) -> tuple[int, str, str]:
    """The CLI as a user runs it: (exit code, stdout, stderr)."""
    env = {"PATH": "/usr/bin:/bin", "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
           "SEGMENTFLOW_TOPIC_PREFIX": settings.topic_prefix,
           "SEGMENTFLOW_PARTITIONS": str(settings.partitions),
           "SEGMENTFLOW_API_TOKEN": TOKEN}
    if url is not None:
        env["SEGMENTFLOW_API_URL"] = url
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def settings(settings):
    settings.api_token = TOKEN
    return settings


async def test_clock_advance_lets_a_due_contact_leave(settings, worker_factory, reader):
    settings = settings.model_copy(update={"clock": "event"})
    worker = worker_factory(settings)
    worker.start()
    await worker.wait_ready()
    changes = await reader(settings.topics.membership_changes)
    async with Publisher(settings) as pub:
        await pub.send(RECENT)
        await pub.flush()
        await wait_caught_up(settings)  # applied everywhere (no contact to backfill)
        await pub.send(ContactUpsert(contact_id="c1", attributes={},
                                     updated_at=BOUGHT.replace(hour=0)))
        await pub.send(Interaction(event_id="e1", contact_id="c1", type="purchase",
                                   occurred_at=BOUGHT))
        await pub.flush()
    values = await changes.settle()
    assert [(c["change"], c["contact_id"]) for c in values] == [("joined", "c1")]

    async with aiohttp.ClientSession() as session:
        api = Api(session, worker.url, auth=AUTH)
        await api.load_openapi()
        _, status = await api.call("GET", "/status", expect=200, route="/status")
        assert status["clock"] == "event" and status["caught_up"] is True
        assert status["complete"] is True
        clocks = {p: s["event_clock"] for p, s in status["partitions"].items()}
        # c1's partition is at the purchase; the other has seen only the
        # broadcast definition, which carries no event time.
        assert sorted(clocks.values(), key=str) == sorted([BOUGHT.isoformat(), None], key=str)

        # Silence: 30 days pass only when the clock is advanced.
        assert not [c for c in await changes.settle() if c["change"] == "left"]
        _, text = await api.call("GET", "/contacts/c1/explain/recent-buyers?format=text",
                                 expect=200)
        assert text.startswith("[TRUE ]")
        assert "clock: event, partition " in text and f"now {BOUGHT.isoformat()}" in text

        later = "2011-03-01T00:00:00Z"
        code, out, err = await segmentflow(settings, "clock", "advance", "--to", later,
                                           url=worker.url)
        assert code == 0, err
        assert out.strip() == ("event clock advanced to 2011-03-01T00:00:00+00:00 on "
                               f"{settings.partitions} partitions")
        values = await changes.settle()
        assert [(c["change"], c["contact_id"], c["cause"]["kind"]) for c in values] == [
            ("joined", "c1", "interaction"), ("left", "c1", "time")]
        assert values[-1]["at"].startswith("2011-03-01T00:00:00")

        _, status = await api.call("GET", "/status", expect=200, route="/status")
        for partition in status["partitions"].values():
            assert partition["event_clock"] == "2011-03-01T00:00:00+00:00"
            assert partition["now"] == partition["event_clock"]
            assert partition["clock_lag_seconds"] > 15 * 365 * 86400  # 2011 vs today
            assert partition["input_lag"] == 0
            assert partition["applied_offset"] == partition["end_offset"] - 1
            assert partition["committed_offset"] == partition["end_offset"]
        _, why = await api.call("GET", "/contacts/c1/explain/recent-buyers", expect=200,
                                route="/contacts/{contact_id}/explain/{segment_id}")
        assert (why["member"], why["clock"], why["now"]) == (
            False, "event", "2011-03-01T00:00:00+00:00")

        # Never backwards: an earlier time changes no clock.
        _, done = await api.call("POST", "/clock/advance", json={"to": "2011-02-01T00:00:00Z"},
                                 expect=202, route="/clock/advance")
        assert done == {"to": "2011-02-01T00:00:00+00:00", "partitions": 2, "clock": "event"}
        await wait_caught_up(settings)
        _, status = await api.call("GET", "/status", expect=200, route="/status")
        assert {s["event_clock"] for s in status["partitions"].values()} == {
            "2011-03-01T00:00:00+00:00"}

        # Bad input: a clear error, nothing written.
        ends = await end_offsets(settings, [settings.topics.evaluator_input])
        _, error = await api.call("POST", "/clock/advance", json={"to": "2011-04-01T00:00"},
                                  expect=422)
        assert "UTC offset" in error["error"]["message"]
        await api.call("POST", "/clock/advance", json={"to": "soon"}, expect=422)
        await api.call("POST", "/clock/advance", json={"to": later}, expect=401, headers={})
        assert await end_offsets(settings, [settings.topics.evaluator_input]) == ends

        # Metrics: each partition's event clock and its lag behind the wall clock.
        async with session.get(worker.url + "/metrics") as response:
            metrics = await response.text()
        found = {(sample.name, sample.labels.get("partition")): sample.value
                 for family in text_string_to_metric_families(metrics)
                 for sample in family.samples}
        stamp = datetime(2011, 3, 1, tzinfo=UTC).timestamp()
        for p in map(str, range(settings.partitions)):
            assert found["segmentflow_event_clock_seconds", p] == stamp
            assert found["segmentflow_clock_lag_seconds", p] > 15 * 365 * 86400


async def test_status_and_wait_caught_up(settings, worker_factory, reader, monkeypatch):
    monkeypatch.setenv("SEGMENTFLOW_BACKFILL_CHUNK", "1")  # a go-live of 20 chunks
    worker = worker_factory(settings)
    worker.start()
    await worker.wait_ready()
    changes = await reader(settings.topics.membership_changes)
    async with Publisher(settings) as pub:
        for i in range(20):
            await pub.send(ContactUpsert(contact_id=f"c{i}",
                                         attributes={"city": "Paris" if i % 2 else "Lyon"}))
        await pub.flush()
        await wait_caught_up(settings)
        await pub.send(SegmentDefinition(id="paris", name="Parisians", status="live",
                                         formula='city = "Paris"'))
        await pub.flush()

    # Exit 0 once every input produced before the command started is applied
    # and its changes are on the output topic: the definition's go-live
    # (a backfill over the 20 contacts) included, so all 10 joins are there.
    code, out, err = await segmentflow(settings, "status", "--wait-caught-up",
                                       "--timeout", "60", url=worker.url)
    assert code == 0, err
    assert out.startswith("caught up: every input produced before ")
    ends = await end_offsets(settings, [settings.topics.membership_changes])
    assert sum(ends.values()) == 10
    assert len(await changes.settle()) == 10

    # The status table and its JSON (wall clock: no lag behind itself).
    code, out, err = await segmentflow(settings, "status", url=worker.url)
    assert code == 0, err
    head, columns, *rows = out.splitlines()
    assert head.startswith("clock: wall   caught up: yes (ingest 0 behind, evaluator 0 behind)")
    assert columns.split() == ["PARTITION", "EVENT_CLOCK", "NOW", "LAG_S", "APPLIED",
                               "COMMITTED", "END", "INPUT_LAG", "BACKFILLS"]
    assert [r.split()[0] for r in rows] == [str(p) for p in range(settings.partitions)]
    code, out, _ = await segmentflow(settings, "status", "--json", url=worker.url)
    status = json.loads(out)
    assert (status["caught_up"], status["backfills_running"]) == (True, 0)
    assert status["ingest"] == {"group": f"{settings.topic_prefix}-ingest", "behind": 0}
    for partition in status["partitions"].values():
        assert (partition["clock"], partition["event_clock"], partition["clock_lag_seconds"],
                partition["input_lag"], partition["backfills_running"]) == (
            "wall", None, 0.0, 0, 0)
        assert partition["batches_settled"] == partition["batches_staged"] > 0

    # The wall clock cannot be advanced.
    code, _, err = await segmentflow(settings, "clock", "advance", "--to",
                                     "2030-01-01T00:00:00Z", url=worker.url)
    assert code == 1 and "HTTP 409 wall_clock" in err, err

    # The worker stopped: an input produced now is never applied; exit 4
    # after the timeout, saying which stage is behind by how much.
    worker.stop()
    async with Publisher(settings) as pub:
        await pub.send(ContactUpsert(contact_id="late", attributes={"city": "Paris"}))
        await pub.flush()
    code, out, err = await segmentflow(settings, "status", "--wait-caught-up",
                                       "--timeout", "2")
    assert code == 4, (out, err)
    assert err.startswith(
        f"error: not caught up after 2 s: ingest (group {settings.topic_prefix}-ingest) is "
        "1 input(s) behind: "), err
