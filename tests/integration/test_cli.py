"""The ``segmentflow`` CLI against a worker on the real broker: apply from
YAML, tables and --json, errors as messages with non-zero exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from app.cli import cli
from app.client import Publisher
from models.inputs import ContactUpsert
from tests.integration.api_helpers import TOKEN
from tests.integration.conftest import ROOT, free_port
from tests.integration.helpers import wait_segment_applied

pytestmark = pytest.mark.kafka

SEGMENTS_YAML = """\
id: paris
name: Parisians
status: live
formula: city = "Paris"
---
id: adults
name: Adults
formula: age >= 18
"""


@pytest.fixture
def settings(settings):
    settings.api_token = TOKEN
    return settings


async def test_cli_against_a_worker(settings, worker, tmp_path):
    runner = CliRunner()
    env = {"SEGMENTFLOW_API_URL": worker.url, "SEGMENTFLOW_API_TOKEN": TOKEN}

    def run(*args: str, code: int = 0, **extra_env: str) -> str:
        result = runner.invoke(cli, list(args), env={**env, **extra_env})
        assert result.exit_code == code, (args, result.output, result.exception)
        return result.output

    async with Publisher(settings) as pub:
        for i, (city, age) in enumerate([("Paris", 30), ("Paris", 12), ("Lyon", 40)]):
            await pub.send(ContactUpsert(contact_id=f"c{i}", attributes={"city": city,
                                                                         "age": age}))
        await pub.flush()

    path = tmp_path / "segments.yaml"
    path.write_text(SEGMENTS_YAML)
    out = run("apply", "-f", str(path))
    assert out.splitlines() == ["segment/paris created (v1)", "segment/adults created (v1)"]
    await wait_segment_applied(worker, "paris", 1, settings.partitions)
    await wait_segment_applied(worker, "adults", 1, settings.partitions)
    assert run("apply", "-f", str(path)).splitlines() == [
        "segment/paris unchanged (v1)", "segment/adults unchanged (v1)"]

    # Writes without the token: refused, exit 1, the API's message.
    out = run("activate", "adults", code=1, SEGMENTFLOW_API_TOKEN="")
    assert "HTTP 401 unauthorized" in out

    listing = run("list")
    header, *rows = listing.splitlines()
    assert header.split() == ["ID", "STATUS", "VERSION", "MEMBERS", "KIND", "FORMULA"]
    assert [r.split()[:4] for r in rows] == [["adults", "draft", "1", "0"],
                                             ["paris", "live", "1", "2"]]
    data = json.loads(run("list", "--json"))
    assert {s["id"]: s["member_count"] for s in data["segments"]} == {"adults": 0, "paris": 2}

    shown = run("show", "paris")
    assert "status:    live" in shown and "members:   2" in shown and "complete" in shown
    # members: ids on stdout, the total and the next cursor on stderr.
    assert run("members", "paris", "--limit", "1", "--all").splitlines()[:2] in (
        ["c0", "c1"], ["c1", "c0"])
    first, hint = run("members", "paris", "--limit", "1").splitlines()
    assert first in ("c0", "c1") and hint.startswith("showing 1 of 2; next: --cursor ")
    assert "[TRUE ]" in run("explain", "c0", "paris")
    out = run("preview", "--formula", 'age >= 18 and city = "Paris"', "--json")
    assert json.loads(out)["size"] == 1 and json.loads(out)["sample"] == ["c0"]
    assert run("preview", "--formula", "age >= 18").startswith("size: 2 of 3 contacts")

    assert run("activate", "adults") == "segment/adults live (v2)\n"
    await wait_segment_applied(worker, "adults", 2, settings.partitions)
    assert run("stop", "paris") == "segment/paris stopped (v2)\n"
    assert run("delete", "adults") == "segment/adults deleted\n"

    # Errors: a bad formula names its position; unknown segment; no service.
    bad = tmp_path / "bad.yaml"
    bad.write_text('id: broken\nformula: city = = "x"\n')
    out = run("apply", "-f", str(bad), code=1)
    assert "segment/broken refused (document 1): invalid: formula" in out
    assert "line 1, column 8" in out
    assert "no segment \"nosuch\"" in run("show", "nosuch", code=1)
    out = run("list", code=3, SEGMENTFLOW_API_URL=f"http://127.0.0.1:{free_port()}")
    assert "cannot reach segmentflow" in out
    assert "exactly one of" in run("preview", code=2)

    # The installed entry point behaves the same from a real process.
    proc = subprocess.run([sys.executable, "-m", "app.cli", "show", "paris", "--json"],
                          env={**os.environ, **env}, cwd=ROOT, capture_output=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "stopped"


async def test_produce_demo_with_progress_bar(settings, worker, reader):
    """The synthetic workload lands on the input topics (the worker created them)."""
    t = settings.topics
    topics = [await reader(name) for name in
              (t.accounts, t.contacts, t.interactions, t.static_edits)]
    result = await asyncio.to_thread(  # the command runs its own event loop
        CliRunner().invoke, cli,
        ["produce-demo", "--source", "synthetic", "--events", "40", "--contacts", "5"],
        env={"KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
             "SEGMENTFLOW_TOPIC_PREFIX": settings.topic_prefix})
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.output.startswith("producing")  # the bar (drawn in full on a tty)
    assert result.output.strip().splitlines()[-1] == "produced 95 inputs"  # 50 + 5 + 40
    for topic in topics:  # the worker caught up, and each reader read to the end
        await topic.settle()
    accounts, contacts, interactions, edits = (len(r.records) for r in topics)
    assert (accounts, contacts >= 5) == (50, True)
    assert (contacts - 5) + interactions + edits == 40
    assert interactions > 20  # most steps are interactions
