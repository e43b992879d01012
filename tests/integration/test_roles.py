"""Ingest in a process of its own (SEGMENTFLOW_ROLE=ingest) beside an
evaluator-only worker (SEGMENTFLOW_ROLE=evaluator), on the real broker:
inputs are forwarded by the ingest process only, and what upstream
publishes while it is down is forwarded once it is back."""

from __future__ import annotations

import aiohttp
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from agents.ingest import ingest_group
from app.client import Publisher
from models.inputs import ContactUpsert
from models.segments import SegmentDefinition
from tests.integration.conftest import free_port
from tests.integration.helpers import wait_segment_applied

pytestmark = pytest.mark.kafka


def _accepted(metrics: str) -> float:
    """Inputs ingest forwarded, by the ``segmentflow_inputs_total`` counter."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("segmentflow_inputs_total{") and 'outcome="accepted"' in line)


async def _members(bootstrap: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
        [described] = response.groups
        return len(described[5])  # the group's members
    finally:
        await admin.close()


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def test_ingest_process_forwards_and_catches_up_after_a_restart(
        settings, worker_factory, reader, tmp_path):
    evaluator = worker_factory(settings.model_copy(update={"role": "evaluator"}))
    ingest_settings = settings.model_copy(update={
        "role": "ingest", "web_port": free_port(), "data_dir": tmp_path / "ingest-data"})
    ingest = worker_factory(ingest_settings)
    evaluator.start()
    ingest.start()
    await evaluator.wait_ready()
    await ingest.wait_ready()
    changes = await reader(settings.topics.membership_changes)

    async with Publisher(settings) as publisher:
        await publisher.send(SegmentDefinition(
            id="paris", name="Contacts in Paris", formula='city = "Paris"', status="live"))
        await publisher.flush()
        await wait_segment_applied(evaluator, "paris", version=1,
                                   partitions=settings.partitions)
        await publisher.send(ContactUpsert(contact_id="c1", attributes={"city": "Paris"}))
        await publisher.flush()
        await changes.wait_for(lambda values: len(values) >= 1)

        async with aiohttp.ClientSession() as session:
            status, ingest_metrics = await _get(session, ingest.url + "/metrics")
            assert status == 200
            _, evaluator_metrics = await _get(session, evaluator.url + "/metrics")
            status, _ = await _get(session, ingest.url + "/segments")
            assert status == 404  # the API is the evaluator's
        assert _accepted(ingest_metrics) >= 2  # the definition and the upsert
        # the evaluator-only worker ingests nothing: not even in the group
        assert _accepted(evaluator_metrics) == 0
        assert await _members(settings.bootstrap_servers, ingest_group(settings)) == 1

        ingest.stop()
        await publisher.send(ContactUpsert(contact_id="c1", attributes={"city": "Berlin"}))
        await publisher.send(ContactUpsert(contact_id="c2", attributes={"city": "Paris"}))
        await publisher.flush()
    ingest.start()  # resumes from its committed offsets
    await ingest.wait_ready()

    final = await changes.settle()
    assert sorted((c["contact_id"], c["change"], c["sequence"]) for c in final) == [
        ("c1", "joined", 1), ("c1", "left", 2), ("c2", "joined", 1)]
