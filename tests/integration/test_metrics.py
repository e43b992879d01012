"""/metrics on a worker with real traffic: the values follow what happened,
``promtool check metrics`` accepts the exposition, and a real Prometheus
server (the Debian ``prometheus`` package) scrapes the worker as up."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from datetime import UTC, datetime

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.client import Publisher
from models.inputs import ContactUpsert, Interaction
from models.segments import SegmentDefinition
from tests.integration.caught_up import wait_caught_up
from tests.integration.conftest import free_port
from tests.integration.helpers import wait_segment_applied

pytestmark = pytest.mark.kafka


@pytest.fixture
def settings(settings):
    settings.metrics_segment_labels = True  # per-segment series (the dashboard's)
    return settings


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def scrape(session: aiohttp.ClientSession, url: str) -> tuple[str, str]:
    async with session.get(url + "/metrics") as response:
        assert response.status == 200
        return response.headers["Content-Type"], await response.text()


async def test_metrics_follow_traffic_and_prometheus_scrapes(settings, worker, reader, tmp_path):
    changes = await reader(settings.topics.membership_changes)
    dead = await reader(settings.topics.dead_letters)
    async with Publisher(settings) as pub:
        await pub.send(SegmentDefinition(id="buyers", name="buyers", status="live",
                                         formula="performed purchase at least 1 times ever"))
        await pub.flush()
        await wait_segment_applied(worker, "buyers", 1, settings.partitions)
        for i in range(5):
            await pub.send(ContactUpsert(contact_id=f"c{i}", attributes={"n": i}))
        for i in range(3):
            await pub.send(Interaction(event_id=f"e{i}", contact_id=f"c{i}", type="purchase",
                                       occurred_at=datetime.now(UTC)))
        await pub.send_raw(settings.topics.contacts, b'{"contact_id": 5}', b"bad")
        await pub.flush()
    await changes.wait_for(lambda v: len(v) == 3)
    await dead.wait_for(lambda v: len(v) == 1)

    await wait_caught_up(settings)
    async with aiohttp.ClientSession() as session:
        # The first scrape: the sizes gauge is computed now (then cached for
        # metrics_sizes_ttl), over state that holds every input.
        ctype, text = await scrape(session, worker.url)
        values = samples(text)
    assert values[("segmentflow_segment_members", (("segment", "buyers"),))] == 3, text
    assert ctype.startswith("text/plain; version=0.0.4")

    def v(name: str, **labels: str) -> float:
        return values[(name, tuple(sorted(labels.items())))]

    assert v("segmentflow_inputs_total", source="contacts", outcome="accepted") == 5
    assert v("segmentflow_inputs_total", source="contacts", outcome="dead_lettered") == 1
    assert v("segmentflow_inputs_total", source="interactions", outcome="accepted") == 3
    assert v("segmentflow_dead_letters_total", reason="invalid") == 1
    assert v("segmentflow_membership_changes_total", segment="buyers", change="joined") == 3
    # One observation per evaluator input: 2 broadcasts + 5 contacts + 3 interactions at least.
    assert v("segmentflow_evaluation_seconds_count") >= 10
    assert v("segmentflow_end_to_end_latency_seconds_count", clock="event") == 3
    assert v("segmentflow_end_to_end_latency_seconds_count", clock="produce") == 3
    assert v("segmentflow_end_to_end_latency_seconds_bucket", clock="produce", le="+Inf") == 3
    assert v("segmentflow_assigned_partitions") == settings.partitions
    assert v("segmentflow_golive_complete_ratio", segment="buyers") == 1.0
    assert v("segmentflow_golive_contacts_scanned", segment="buyers") == 0
    assert v("segmentflow_due_index_entries") >= 0
    assert v("segmentflow_tick_lag_seconds") >= 0
    lags = [value for (name, _), value in values.items()
            if name == "segmentflow_consumer_lag_messages"]
    assert len(lags) == settings.partitions and all(lag >= 0 for lag in lags)

    # promtool (Debian package prometheus, installed by .ci/run) accepts it.
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: apt-get install prometheus (.ci/run does)"
    check = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()

    # A real Prometheus server scrapes the worker and sees it up.
    binary = shutil.which("prometheus")
    assert binary, "prometheus missing: apt-get install prometheus (.ci/run does)"
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: segmentflow\n    static_configs:\n"
        f"      - targets: ['{settings.web_host}:{settings.web_port}']\n")
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        target = await _wait_target_up(f"http://127.0.0.1:{port}", server, timeout=60)
        assert target["labels"]["job"] == "segmentflow"
        assert target["lastError"] == ""
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


async def _wait_target_up(url: str, server: subprocess.Popen, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert server.poll() is None, f"prometheus exited with {server.returncode}"
            try:
                async with session.get(url + "/api/v1/targets") as response:
                    if response.status == 200:
                        last = (await response.json())["data"]["activeTargets"]
                        up = [t for t in last if t["health"] == "up"]
                        if up:
                            return up[0]
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
    raise AssertionError(f"prometheus never saw the worker up: {last}")
