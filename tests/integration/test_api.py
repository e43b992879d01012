"""The HTTP API against a worker subprocess on the real broker: writes
produce to the topics (202), reads come from the evaluator's state, every
JSON response validates against the service's own /openapi.json."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from app.client import Publisher
from models.inputs import ContactUpsert
from tests.integration.api_helpers import (
    AUTH,
    READ_AUTH,
    READ_TOKEN,
    TOKEN,
    Api,
)
from tests.integration.caught_up import wait_caught_up
from tests.integration.helpers import fold, wait_segment_applied

pytestmark = pytest.mark.kafka

CITIES = {f"c{i}": ("Paris" if i % 3 == 0 else "Lyon") for i in range(12)}
PARISIANS = sorted(c for c, city in CITIES.items() if city == "Paris")


@pytest.fixture
def settings(settings):
    settings.api_token = TOKEN
    settings.api_read_token = READ_TOKEN
    settings.api_max_body_bytes = 4096
    return settings


async def test_segments_api_end_to_end(settings, worker, reader):
    changes = await reader(settings.topics.membership_changes)
    async with aiohttp.ClientSession() as session, Publisher(settings) as pub:
        api = Api(session, worker.url, auth=READ_AUTH)  # reads need a token
        doc = await api.load_openapi()
        assert doc["openapi"].startswith("3.1")

        # Security and the error format.
        seg = {"id": "paris", "name": "Parisians", "formula": 'city = "Paris"'}
        _, body = await api.call("POST", "/segments", json=seg, expect=401, headers={})
        assert body["error"]["code"] == "unauthorized"
        _, body = await api.call("POST", "/segments", json=seg, expect=403,
                                 headers={"Authorization": "Bearer wrong"})
        _, body = await api.call("POST", "/segments", route="/segments", expect=422, headers=AUTH,
                                 json={"id": "bad", "formula": 'city = = "Paris"'})
        assert "line 1, column 8" in body["error"]["message"]
        assert body["error"]["details"][0]["loc"] == "formula"
        _, body = await api.call("POST", "/segments", expect=400, headers=AUTH,
                                 data=b'{"id": "x",')
        assert body["error"]["code"] == "invalid_json"
        assert "column" in body["error"]["message"]
        _, body = await api.call("POST", "/segments", expect=413, headers=AUTH,
                                 json={**seg, "description": "x" * 5000})
        assert body["error"]["code"] == "body_too_large"
        _, body = await api.call("GET", "/no/such/thing", expect=404)
        await api.call("PATCH", "/segments", expect=405)

        # Contacts exist before anything goes live.
        for cid, city in CITIES.items():
            await pub.send(ContactUpsert(contact_id=cid, attributes={"city": city}))
        await pub.flush()
        # Applied before the preview below counts them (the contacts and the
        # definitions topics are not ordered with each other).
        await changes.settle()

        # Create (draft): produced, accepted with version 1, nothing joins.
        _, created = await api.call("POST", "/segments", route="/segments", expect=202,
                                    headers=AUTH, json=seg)
        assert (created["version"], created["status"]) == (1, "draft")
        await wait_segment_applied(worker, "paris", 1, settings.partitions)
        await api.call("POST", "/segments", expect=409, headers=AUTH, json=seg)

        # Preview a draft (formula text): exact size, sample, nothing live.
        _, preview = await api.call("POST", "/preview?sample=2", route="/preview", expect=200,
                                    data='city = "Paris"',
                                    headers={**READ_AUTH, "Content-Type": "text/plain"})
        assert preview["size"] == len(PARISIANS) and preview["contacts_scanned"] == len(CITIES)
        assert len(preview["sample"]) == 2 and set(preview["sample"]) <= set(PARISIANS)
        assert preview["complete"] is True

        # Activate: a new version, live; backfill joins exactly the Parisians.
        _, live = await api.call("POST", "/segments/paris/activate", expect=202, headers=AUTH,
                                 route="/segments/{segment_id}/activate")
        assert (live["version"], live["status"]) == (2, "live")
        await wait_segment_applied(worker, "paris", 2, settings.partitions)
        await changes.wait_for(lambda v: len(v) == len(PARISIANS))

        async def summary():
            return (await api.call("GET", "/segments/paris", route="/segments/{segment_id}",
                                   expect=200))[1]

        await wait_caught_up(settings)
        s = await summary()
        assert s["member_count"] == len(PARISIANS)
        assert (s["status"], s["version"], s["applied_version"]) == ("live", 2, 2)
        assert s["formula"] == 'city = "Paris"' and s["go_live"]["complete"] is True
        assert s["go_live"]["contacts_scanned"] == len(CITIES)
        _, listing = await api.call("GET", "/segments", route="/segments", expect=200)
        assert [(x["id"], x["member_count"]) for x in listing["segments"]] == [
            ("paris", len(PARISIANS))]

        # Members, cursor-paginated: every member once.
        seen, cursor, pages = [], None, 0
        while True:
            query = f"?limit=2&cursor={cursor}" if cursor else "?limit=2"
            _, page = await api.call("GET", "/segments/paris/members" + query, expect=200,
                                     route="/segments/{segment_id}/members")
            seen += page["members"]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == PARISIANS and len(seen) == len(set(seen))
        assert pages == (len(PARISIANS) + 1) // 2
        await api.call("GET", "/segments/paris/members?cursor=zzz", expect=400)
        await api.call("GET", "/segments/paris/members?limit=0", expect=400)

        # A contact's segments, and explain (JSON and text).
        _, mine = await api.call("GET", "/contacts/c0/segments", expect=200,
                                 route="/contacts/{contact_id}/segments")
        assert mine["segments"] == ["paris"]
        _, why = await api.call("GET", "/contacts/c1/explain/paris", expect=200,
                                route="/contacts/{contact_id}/explain/{segment_id}")
        assert why["member"] is False and why["evaluates_to"] is False
        assert "city" in why["text"] and "Lyon" in why["text"]
        _, text = await api.call("GET", "/contacts/c0/explain/paris?format=text", expect=200)
        assert text.startswith("[TRUE ]")
        await api.call("GET", "/contacts/nobody/segments", expect=404)
        await api.call("GET", "/contacts/c0/explain/nosuch", expect=404)

        # Flow: Mermaid and SVG.
        _, flow = await api.call("GET", "/segments/paris/flow", expect=200,
                                 route="/segments/{segment_id}/flow")
        assert flow["mermaid"].startswith("flowchart TD") and "city = #quot;Paris#quot;" in \
            flow["mermaid"]
        assert flow["svg"].startswith("<svg") and "city = &quot;Paris&quot;" in flow["svg"]
        assert flow["references"] == [] and flow["dependents"] == []

        # Static add of a non-matching contact: it joins (cause static_edit).
        await api.call("PUT", "/segments/paris/members/c1", expect=202, headers=AUTH,
                       route="/segments/{segment_id}/members/{contact_id}")
        values = await changes.wait_for(
            lambda v: any(c["contact_id"] == "c1" and c["change"] == "joined" for c in v))
        assert [c["cause"]["kind"] for c in values if c["contact_id"] == "c1"] == ["static_edit"]
        await api.call("PUT", "/segments/nosuch/members/c1", expect=404, headers=AUTH)

        # Update with formula text alone (keeps name and status), then a cycle is refused.
        _, updated = await api.call("PUT", "/segments/paris", expect=202, headers={
            **AUTH, "Content-Type": "text/plain"}, data='city in ("Paris", "Lyon")',
            route="/segments/{segment_id}")
        assert (updated["version"], updated["status"], updated["name"]) == (3, "live", "Parisians")
        await api.call("PUT", "/segments/vip", expect=202, headers=AUTH,
                       json={"kind": "compound", "formula": 'in segment "paris"'})
        await wait_segment_applied(worker, "vip", 1, settings.partitions)
        _, body = await api.call("PUT", "/segments/paris", expect=409, headers=AUTH,
                                 json={"formula": 'in segment "vip"', "kind": "compound"})
        assert body["error"]["code"] == "reference_cycle"
        await wait_segment_applied(worker, "paris", 3, settings.partitions)
        await changes.wait_for(lambda v: sum(c["change"] == "joined" and c["segment_id"] ==
                                             "paris" for c in v) == len(CITIES))

        # Stop freezes membership; delete makes every member leave.
        _, stopped = await api.call("POST", "/segments/paris/stop", expect=202, headers=AUTH,
                                    route="/segments/{segment_id}/stop")
        assert (stopped["version"], stopped["status"]) == (4, "stopped")
        await wait_segment_applied(worker, "paris", 4, settings.partitions)
        await api.call("DELETE", "/segments/vip", expect=202, headers=AUTH,
                       route="/segments/{segment_id}")
        await api.call("DELETE", "/segments/paris", expect=202, headers=AUTH)
        await wait_segment_applied(worker, "paris", 0, settings.partitions)
        await api.call("GET", "/segments/paris", expect=404, route="/segments/{segment_id}")
        await api.call("DELETE", "/segments/paris", expect=404, headers=AUTH)
        final = fold(await changes.settle())
        assert final == {}  # everyone left with the deletions

        _, status = await api.call("GET", "/segments/paris/status", expect=200,
                                   route="/segments/{segment_id}/status")
        assert status["status"] == "deleted"
        _, health = await api.call("GET", "/health", expect=200, route="/health")
        assert health == {"status": "ok"}
        _, ready = await api.call("GET", "/ready", expect=200, route="/ready")
        assert ready["ready"] is True


async def test_schemathesis_fuzzes_the_documented_api(settings, worker, tmp_path):
    """Property-based requests generated from the service's own /openapi.json:
    no 5xx, documented status codes and content types, responses valid
    against the documented schemas. Bounded: a few examples per operation."""
    binary = Path(sys.executable).with_name("schemathesis")
    assert binary.exists(), "schemathesis missing: pip install -e '.[dev]'"
    result = subprocess.run(
        [str(binary), "run", f"{worker.url}/openapi.json",
         "-H", f"Authorization: Bearer {TOKEN}", "--max-examples", "20",
         "--phases", "coverage,fuzzing", "--warnings", "off",
         "--checks", "not_a_server_error,status_code_conformance,"
                     "content_type_conformance,response_schema_conformance"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)  # its cache stays in tmp
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
