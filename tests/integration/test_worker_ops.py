"""Operational details a newcomer meets first (issue #14): the worker logs
where its API is, and ``/ready`` and ``/metrics`` agree on how many
partitions the worker holds (/ready counted every topic's and changelog's
partitions in the consumer's assignment: 105 where the metric said 8)."""

from __future__ import annotations

import aiohttp
import pytest

pytestmark = pytest.mark.kafka


async def test_ready_and_metrics_agree_and_the_api_url_is_logged(settings, worker):
    async with aiohttp.ClientSession() as session:
        async with session.get(worker.url + "/ready") as response:
            assert response.status == 200
            ready = await response.json()
        async with session.get(worker.url + "/metrics") as response:
            metrics = await response.text()
    gauge = [float(line.split()[1]) for line in metrics.splitlines()
             if line.startswith("segmentflow_assigned_partitions ")]
    assert ready["assigned_partitions"] == settings.partitions  # one worker holds them all
    assert gauge == [settings.partitions]

    log = worker.log_path.read_text(errors="replace")
    assert f"API at {worker.url} (OpenAPI document: {worker.url}/openapi.json)" in log
