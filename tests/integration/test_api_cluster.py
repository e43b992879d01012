"""Reads across two workers: each holds one partition; counts, member pages,
previews and status are gathered from the peer, contact reads forwarded to
the worker that holds the contact."""

from __future__ import annotations

import aiohttp
import pytest

from agents.partitioning import partition_for
from app.client import Publisher
from models.inputs import ContactUpsert
from tests.integration.api_helpers import AUTH, READ_AUTH, READ_TOKEN, TOKEN, Api, eventually
from tests.integration.caught_up import wait_caught_up
from tests.integration.conftest import free_port
from tests.integration.helpers import wait_segment_applied

pytestmark = pytest.mark.kafka

CONTACTS = {f"c{i}": i for i in range(20)}
EVEN = sorted(c for c, n in CONTACTS.items() if n % 2 == 0)


async def held(session: aiohttp.ClientSession, url: str) -> float | None:
    async with session.get(url + "/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith("segmentflow_assigned_partitions "):
                return float(line.split()[1])
    return None


async def test_reads_gather_across_two_workers(settings, worker_factory, tmp_path):
    settings.api_token = TOKEN
    settings.api_read_token = READ_TOKEN  # peers get the caller's read token
    settings.standby_replicas = 1  # each worker keeps a copy of the other's partition
    other = settings.model_copy(update={"web_port": free_port(),
                                        "data_dir": tmp_path / "worker-b-data"})
    a, b = worker_factory(settings), worker_factory(other)
    a.start()
    await a.wait_ready()
    b.start()
    await b.wait_ready()
    async with aiohttp.ClientSession() as session, Publisher(settings) as pub:
        # After the rebalance each worker evaluates one of the two partitions.
        for w in (a, b):
            await eventually(lambda w=w: held(session, w.url), lambda n: n == 1.0, timeout=60)
        api_a, api_b = Api(session, a.url, auth=READ_AUTH), Api(session, b.url, auth=READ_AUTH)
        for api in (api_a, api_b):
            await api.load_openapi()

        for cid, n in CONTACTS.items():
            await pub.send(ContactUpsert(contact_id=cid, attributes={"n": n, "even": n % 2 == 0}))
        await pub.flush()
        await api_a.call("PUT", "/segments/even", expect=202, headers=AUTH,
                         json={"status": "live", "formula": "even = true"})
        # /status gathers both partitions from either worker.
        await wait_segment_applied(a, "even", 1, settings.partitions)
        await wait_segment_applied(b, "even", 1, settings.partitions)
        # GET /status: both partitions' clocks and offsets from either worker.
        await wait_caught_up(settings)
        for api in (api_a, api_b):
            _, status = await api.call("GET", "/status", expect=200, route="/status")
            assert sorted(status["partitions"]) == ["0", "1"] and status["complete"]
            assert (status["caught_up"], status["backfills_running"]) == (True, 0)
            assert all(p["input_lag"] == 0 for p in status["partitions"].values())
            _, own = await api.call("GET", "/status?local=1", expect=200, route="/status")
            assert len(own["partitions"]) == 1 and own["complete"] is False
            # The standby copy here is of the partition the other worker holds.
            assert list(own["standbys"]) == [p for p in ("0", "1") if p not in own["partitions"]]

            async def standbys(api=api):
                return (await api.call("GET", "/status", expect=200, route="/status"))[1][
                    "standbys"]

            # Gathered: one copy of each partition, caught up with its changelog.
            await eventually(standbys, lambda s: s == {"0": [0], "1": [0]}, timeout=60)

        for api in (api_a, api_b):
            async def summary(api=api):
                return (await api.call("GET", "/segments/even", expect=200,
                                       route="/segments/{segment_id}"))[1]

            s = await summary()  # caught up above: every input and the go-live applied
            assert s["member_count"] == len(EVEN)
            assert s["complete"] is True and s["partitions_answered"] == [0, 1]
            assert s["go_live"]["complete"] is True and s["go_live"]["partitions"] == 2
            _, listing = await api.call("GET", "/segments", expect=200, route="/segments")
            assert listing["segments"][0]["member_count"] == len(EVEN) and listing["complete"]

            # Member pages span both workers, each member once.
            seen, cursor = [], None
            while True:
                query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
                _, page = await api.call("GET", "/segments/even/members" + query, expect=200,
                                         route="/segments/{segment_id}/members")
                seen += page["members"]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert sorted(seen) == EVEN and len(seen) == len(EVEN)
            assert seen == sorted(seen, key=lambda c: (partition_for(c, 2), c))

            # Preview gathers sizes and samples.
            _, preview = await api.call("POST", "/preview?sample=50", expect=200,
                                        route="/preview", data="n >= 10",
                                        headers={**READ_AUTH, "Content-Type": "text/plain"})
            assert preview["size"] == 10 and preview["contacts_scanned"] == len(CONTACTS)
            assert sorted(preview["sample"]) == sorted(c for c, n in CONTACTS.items() if n >= 10)

            # Contact reads are forwarded to the holder, whichever worker is asked.
            for cid in ("c0", "c1", "c2", "c3"):
                _, mine = await api.call("GET", f"/contacts/{cid}/segments", expect=200,
                                         route="/contacts/{contact_id}/segments")
                assert mine["segments"] == (["even"] if CONTACTS[cid] % 2 == 0 else [])
                assert mine["partition"] == partition_for(cid, 2)
                _, text = await api.call("GET", f"/contacts/{cid}/explain/even?format=text",
                                         expect=200)
                assert text.startswith("[TRUE ]" if CONTACTS[cid] % 2 == 0 else "[false]")

        # local=1: only this worker's share, flagged incomplete.
        _, own = await api_a.call("GET", "/segments/even?local=1", expect=200)
        assert own["complete"] is False and len(own["partitions_answered"]) == 1
        assert 0 < own["member_count"] < len(EVEN)
