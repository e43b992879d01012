"""Backtest (issue 13 item 7) against the naive reference: the members of a
draft at past instants, computed by the API's reads over the runtime's
partition stores and retained history, equal a from-scratch recomputation
over the interactions up to each instant (attributes as they are now)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.state_reads import EvaluatorReads
from engine import Catalog
from engine.timeutil import from_us, to_us
from models.inputs import Interaction
from models.segments import SegmentDefinition
from runtime.archive import Archive
from runtime.driver import Driver
from runtime.keys import Keyspace
from runtime.processor import ProcessorConfig
from runtime.views import Accounts
from tests.naive import NaiveContact, naive_memberships

T0 = datetime(2026, 3, 1, tzinfo=UTC)
PARTITIONS = 2
FORMULAS = [
    "performed purchase at least 2 times within last 10 days",
    "sum amount of purchase within last 20 days >= 15",
    "performed purchase at least 3 times ever",
    'performed purchase where channel = "web" within last 5 days and tier = "gold"',
    "not performed purchase within last 7 days",
    "avg amount of purchase between 2026-03-05 and 2026-03-20 > 5",
]


class DriverReads(EvaluatorReads):
    """The API's read hooks over a broker-free driver's partitions."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver

    def held_partitions(self) -> set[int]:
        return set(self.driver.processors)

    def _read(self, partition: int) -> Any:
        return self.driver.processors[partition].store.begin()

    def _catalog(self, partition: int) -> Catalog:
        return self.driver.processors[partition].catalog

    def _scan_contacts(self, partition: int, after: str | None,
                       limit: int) -> list[tuple[str, bytes]]:
        scan = self._read(partition).scan_range(
            Keyspace.CONTACTS, after=after.encode() if after is not None else None)
        return [(key.decode(), raw) for key, raw in islice(scan, limit)]

    def _accounts(self, partition: int) -> Mapping[str, Mapping[str, Any]]:
        return Accounts(self._read(partition), {})

    def _now(self, partition: int) -> datetime:
        clock = self.driver.processors[partition].event_clock
        return from_us(clock) if clock is not None else T0

    def _retention_us(self) -> int:
        return self.driver.config.retention_us

    def _archived(self, partition: int, first: str, last: str,
                  now: datetime) -> dict[str, list[Any]]:
        archive = Archive(self._read(partition), self._retention_us(), prune=False)
        return archive.events_of(first, last, to_us(now))  # type: ignore[return-value]


events = st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 30 * 24),
                            st.integers(1, 12), st.sampled_from(["web", "shop"])),
                  max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(evs=events, formula=st.sampled_from(FORMULAS),
       points=st.lists(st.integers(0, 32 * 24), min_size=1, max_size=5, unique=True),
       gold=st.sets(st.sampled_from(["a", "b", "c", "d"])))
def test_backtest_equals_naive_at_each_point(evs: list, formula: str, points: list[int],
                                             gold: set[str]) -> None:
    config = ProcessorConfig(partitions=PARTITIONS, clock="event")
    driver = Driver(PARTITIONS, config=config, batch_size=7, wall=lambda: T0)
    naive: dict[str, NaiveContact] = {}
    try:
        for cid in "abcd":
            tier = "gold" if cid in gold else "silver"
            driver.send("contact", {"contact_id": cid, "attributes": {"tier": tier},
                                    "updated_at": T0.isoformat()})
            naive[cid] = NaiveContact(cid, attrs={"tier": tier})
        for n, (cid, hours, amount, channel) in enumerate(evs):
            body = {"event_id": f"e{n}", "contact_id": cid, "type": "purchase",
                    "occurred_at": (T0 + timedelta(hours=hours)).isoformat(),
                    "properties": {"amount": amount, "channel": channel}}
            driver.send("interaction", body)
            naive[cid].add_event(Interaction.model_validate(body))
        end = T0 + timedelta(days=33)
        driver.send("clock", {"to": end.isoformat()})
        driver.run_until_idle()
        draft = SegmentDefinition.model_validate({"id": "draft", "name": "draft", "status": "live",
                                                  "formula": formula})
        instants = [T0 + timedelta(hours=h) for h in sorted(points)]
        result = asyncio.run(DriverReads(driver).backtest(draft, instants, 10))
        expected = []
        for at in instants:
            count = 0
            for contact in naive.values():
                past = NaiveContact(contact.contact_id, attrs=contact.attrs,
                                    events=[e for e in contact.events if e.occurred_at <= at])
                count += naive_memberships([draft], past, {}, at)["draft"]
            expected.append(count)
        assert result.sizes == expected
        assert result.scanned == 4 * 1
    finally:
        driver.close()
