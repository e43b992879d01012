"""A contact whose state would outgrow one changelog record: the input that
would grow it is dead-lettered with the reason, nothing about the contact
changes, and the partition keeps going (before, the changelog write failed
and the worker exited on every replay of that input)."""

from __future__ import annotations

import pytest

from app.client import Publisher
from models.inputs import ContactUpsert
from models.segments import SegmentDefinition
from tests.integration.helpers import fold, wait_segment_applied

pytestmark = pytest.mark.kafka


def _big(prefix: str) -> dict[str, str]:
    """About 600 KB of attributes (values are limited to 65,536 characters)."""
    return {f"{prefix}{i}": "x" * 60_000 for i in range(10)}


async def test_input_that_would_outgrow_the_state_limit_is_dead_lettered(
        settings, worker, reader):
    changes = await reader(settings.topics.membership_changes)
    dead_letters = await reader(settings.topics.dead_letters)
    async with Publisher(settings) as pub:
        await pub.send(SegmentDefinition(id="paris", name="Parisians", status="live",
                                         formula='city = "Paris"'))
        await pub.flush()
        await wait_segment_applied(worker, "paris", 1, settings.partitions)
        # Each upsert fits the input limit (1,000,000 bytes); the second would
        # take the merged profile past the state limit, 900,000 bytes by
        # default, and the broker's 1 MiB record limit with it (it would also
        # have made c1 join).
        await pub.send(ContactUpsert(contact_id="c1", attributes=_big("a")))
        await pub.send(ContactUpsert(contact_id="c1",
                                     attributes={**_big("b"), "city": "Paris"}))
        await pub.send(ContactUpsert(contact_id="c2", attributes={"city": "Paris"}))
        await pub.send(ContactUpsert(contact_id="c1",
                                     attributes={**dict.fromkeys(_big("a")), "city": "Paris"}))
        await pub.flush()
    letters = await dead_letters.settle()
    assert len(letters) == 1, letters
    assert "would grow to" in letters[0]["reason"], letters[0]["reason"]
    assert "SEGMENTFLOW_MAX_CONTACT_STATE_BYTES" in letters[0]["reason"]
    # c1 joined only with the last upsert (which fits), c2 was not held up.
    final = await changes.settle()
    assert fold(final) == {("paris", "c1"): True, ("paris", "c2"): True}
    assert len(final) == 2  # one join each, nothing emitted for the refused input
