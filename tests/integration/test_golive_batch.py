"""A segment going live right behind its contacts' first inputs: when both
land in one evaluator batch, the new contacts are still in the batch's
write-behind overlay, and the go-live backfill must see them anyway."""

from __future__ import annotations

import pytest

from app.client import Publisher
from models.inputs import ContactUpsert
from models.segments import SegmentDefinition
from tests.integration.helpers import fold, wait_segment_applied

pytestmark = pytest.mark.kafka


@pytest.fixture
def settings(settings):
    # Long batches: the contacts and the definition are evaluated in one.
    settings.batch_within = 0.5
    return settings


async def test_go_live_sees_contacts_created_in_the_same_batch(settings, worker, reader):
    changes = await reader(settings.topics.membership_changes)
    expected = set()
    async with Publisher(settings) as pub:
        for round_ in range(3):
            ids = [f"r{round_}-c{i}" for i in range(40)]
            for cid in ids:
                await pub.send(ContactUpsert(contact_id=cid, attributes={"round": round_}))
            await pub.send(SegmentDefinition(id=f"round{round_}", name="r", status="live",
                                             formula=f"round = {round_}"))
            await pub.flush()
            await wait_segment_applied(worker, f"round{round_}", 1, settings.partitions)
            expected |= {(f"round{round_}", cid) for cid in ids}
    await changes.wait_for(lambda v: len(v) >= len(expected), timeout=20)
    assert set(fold(await changes.settle())) == expected
