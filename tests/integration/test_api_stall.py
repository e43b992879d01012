"""Issue #11 (safety): a flood of heavy HTTP requests never stalls the
evaluator, which shares the worker's event loop with the API."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from app.client import Publisher
from models.inputs import ContactUpsert
from models.segments import SegmentDefinition
from tests.integration.api_helpers import AUTH, READ_AUTH, READ_TOKEN, TOKEN
from tests.integration.helpers import wait_segment_applied
from tests.integration.test_api_safety import alias_bomb, deep_json, max_formula, nested

pytestmark = pytest.mark.kafka


def _produced_at(reader, contact_id: str) -> float | None:
    """When the worker produced the change of ``contact_id`` (epoch s)."""
    for (_, value), stamp in zip(reader.records, reader.timestamps, strict=True):
        if value is not None and f'"contact_id":"{contact_id}"'.encode() in value:
            return stamp / 1000
    return None


@pytest.fixture
def settings(settings):
    settings.api_token = TOKEN
    settings.api_read_token = READ_TOKEN
    return settings


async def test_heavy_requests_never_stall_the_worker(settings, worker, reader):
    """Finding A: a flood of heavy requests (max-size formulas to /preview
    and PUT, 1 MB bodies, deep nesting, YAML alias bombs) while inputs flow:
    every membership change arrives within 1 s of its input and /health
    answers within 1 s throughout. Every request gets a clear answer."""
    changes = await reader(settings.topics.membership_changes)
    async with Publisher(settings) as pub:
        await pub.send(SegmentDefinition(id="paris", name="Parisians", status="live",
                                         formula='city = "Paris"'))
        await pub.flush()
        await wait_segment_applied(worker, "paris", 1, settings.partitions)
        for i in range(200):  # something for previews to scan
            await pub.send(ContactUpsert(contact_id=f"base{i}", attributes={"city": "Lyon"}))
        await pub.flush()
    # The setup's inputs are processed before the flood: the lags measured
    # are those of inputs sent to a caught-up worker (the first ones were
    # otherwise queued behind these 200).
    await changes.settle()

    big = max_formula()
    heavy: list[tuple[str, str, dict, bytes | str]] = [
        ("POST", "/preview", {**READ_AUTH, "Content-Type": "text/plain"}, big),
        ("PUT", "/segments/big", {**AUTH, "Content-Type": "text/plain"}, big),
        ("PUT", "/segments/huge", {**AUTH, "Content-Type": "text/plain"}, "a = 1 or " * 120_000),
        ("PUT", "/segments/deep", {**AUTH, "Content-Type": "text/plain"}, nested(300)),
        ("POST", "/preview", {**READ_AUTH, "Content-Type": "application/json"}, deep_json(900)),
        ("PUT", "/segments/bomb", {**AUTH, "Content-Type": "application/yaml"}, alias_bomb()),
        ("POST", "/preview", {**READ_AUTH, "Content-Type": "application/yaml"},
         "[" * 5000 + "]" * 5000),
    ]
    statuses: dict[tuple[str, str], list[int]] = {}
    health_worst = 0.0
    lags: list[float] = []
    stop = asyncio.Event()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def flood(offset: int) -> None:
            n = offset
            while not stop.is_set():
                method, path, headers, body = heavy[n % len(heavy)]
                n += 1
                async with session.request(method, worker.url + path, headers=headers,
                                           data=body) as response:
                    await response.read()
                    statuses.setdefault((method, path), []).append(response.status)

        async def probe_health() -> None:
            nonlocal health_worst
            while not stop.is_set():
                start = time.monotonic()
                async with session.get(worker.url + "/health") as response:
                    assert response.status == 200
                health_worst = max(health_worst, time.monotonic() - start)
                await asyncio.sleep(0.05)  # sampling interval of the probe

        async def inputs() -> None:
            async with Publisher(settings) as pub:
                for i in range(24):
                    contact = f"live{i}"
                    sent = time.time()
                    await pub.send(ContactUpsert(contact_id=contact,
                                                 attributes={"city": "Paris"}))
                    await pub.flush()
                    # The lag is the worker's: from the input's send to the
                    # change's own record timestamp (set when the worker
                    # produced it), so this process's busy loop (it runs the
                    # flood too) does not count.
                    await changes.until(lambda: _produced_at(changes, contact) is not None,  # noqa: B023
                                        10, f"{contact}: its change")
                    lags.append(_produced_at(changes, contact) - sent)  # type: ignore[operator]
                    await asyncio.sleep(0.25)  # pacing: inputs spread over the flood

        tasks = [asyncio.create_task(flood(k)) for k in range(6)]
        tasks.append(asyncio.create_task(probe_health()))
        try:
            await inputs()
        finally:
            stop.set()
            await asyncio.gather(*tasks)

    print(f"\nchange lag max {max(lags):.3f} s, /health worst {health_worst:.3f} s, "
          f"requests {sum(len(v) for v in statuses.values())}; lags {[round(x, 2) for x in lags]}")
    assert len(lags) == 24
    assert max(lags) < 1.0, lags
    assert health_worst < 1.0, health_worst
    answered = {s for codes in statuses.values() for s in codes}
    assert answered <= {200, 202, 400, 413, 422, 503}, statuses  # never 500
    assert 200 in statuses[("POST", "/preview")] and 202 in statuses[("PUT", "/segments/big")]
    assert set(statuses[("PUT", "/segments/huge")]) <= {413, 503}  # over the body limit
    assert set(statuses[("PUT", "/segments/bomb")]) <= {422, 503}
    assert set(statuses[("PUT", "/segments/deep")]) <= {422, 503}
