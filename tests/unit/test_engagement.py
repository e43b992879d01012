"""Engagement (issue 15): what a segment's current members did, per UTC day
and event type, from the retained history, through the API's reads."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from app.api.engagement import engagement_answer
from runtime.driver import Driver
from runtime.processor import ProcessorConfig
from tests.unit.test_backtest import T0, DriverReads


def test_members_interactions_per_day_and_type() -> None:
    config = ProcessorConfig(partitions=2, clock="event")
    driver = Driver(2, config=config, wall=lambda: T0)
    try:
        for cid, city in (("a", "Paris"), ("b", "Paris"), ("c", "Lyon")):
            driver.send("contact", {"contact_id": cid, "attributes": {"city": city},
                                    "updated_at": T0.isoformat()})
        opens = {"a": [0, 0, 1], "b": [1], "c": [0, 1]}  # days after T0
        for cid, days in opens.items():
            for n, day in enumerate(days):
                driver.send("interaction", {
                    "event_id": f"{cid}{n}", "contact_id": cid, "type": "email_opened",
                    "occurred_at": (T0 + timedelta(days=day, hours=3)).isoformat(),
                    "properties": {}})
        driver.send("interaction", {  # older than the 5 days asked for
            "event_id": "old", "contact_id": "a", "type": "page_visited",
            "occurred_at": (T0 - timedelta(days=9)).isoformat(), "properties": {}})
        driver.send("segment", {"id": "paris", "name": "paris", "status": "live",
                                "formula": 'city = "Paris"'})
        driver.send("clock", {"to": (T0 + timedelta(days=2)).isoformat()})
        driver.run_until_idle()
        result = asyncio.run(DriverReads(driver).engagement("paris", 5))
        assert result.members == 2
        assert result.counts == {("2026-03-01", "email_opened"): 2,
                                 ("2026-03-02", "email_opened"): 2}  # c is not a member
        answer = engagement_answer("paris", 5, result.members, result.counts)
        assert answer["types"] == ["email_opened"]
        assert answer["series"][0] == {"day": "2026-03-01",
                                       "interactions": {"email_opened": 2},
                                       "per_member": {"email_opened": 1.0}}
    finally:
        driver.close()
