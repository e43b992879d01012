"""Definitions are applied or visibly refused, never in between (issue #14),
through the real CLI against a worker on the real broker.

1. Two segments referencing each other, applied at the same instant by two
   ``segmentflow apply`` processes: one is created, the other refused at
   once with the cycle (exit 1), never two "created".
2. A definition that gets past the API anyway (written straight to the
   definitions topic, as a concurrent writer through another worker could)
   and that the evaluator refuses: ``show``, ``list``, the API and the
   metrics say refused, with the reason, and show the version in force.
   A later valid version clears it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import aiohttp
import pytest
from click.testing import CliRunner, Result

from app.cli import cli
from app.client import Publisher
from models.segments import SegmentDefinition
from tests.integration.api_helpers import AUTH, TOKEN
from tests.integration.caught_up import wait_caught_up
from tests.integration.conftest import ROOT
from tests.integration.helpers import wait_segment_applied

pytestmark = pytest.mark.kafka

CYCLE_AB = "segment reference cycle: {0} -> {1} -> {0}"


@pytest.fixture
def settings(settings):
    settings.api_token = TOKEN
    return settings


async def apply_process(env: dict[str, str], path: str) -> tuple[int, str]:
    """``segmentflow apply -f path`` as its own process (exit code, output)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "apply", "-f", path, cwd=ROOT,
        env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_definitions_are_applied_or_visibly_refused(settings, worker, tmp_path):
    env = {"SEGMENTFLOW_API_URL": worker.url, "SEGMENTFLOW_API_TOKEN": TOKEN}
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> Result:
        result = runner.invoke(cli, list(args), env=env)
        assert result.exit_code == code, (args, result.output, result.exception)
        return result

    # 1. Two quick applies that reference each other: one 202, one 409.
    (tmp_path / "a.yaml").write_text('id: a\nkind: compound\nformula: in segment "b"\n')
    (tmp_path / "b.yaml").write_text('id: b\nkind: compound\nformula: in segment "a"\n')
    results = await asyncio.gather(apply_process(env, str(tmp_path / "a.yaml")),
                                   apply_process(env, str(tmp_path / "b.yaml")))
    created = [(code, out) for code, out in results if code == 0]
    refused = [(code, out) for code, out in results if code != 0]
    assert len(created) == 1 and len(refused) == 1, results
    winner = "a" if created[0][1].startswith("segment/a created (v1)") else "b"
    loser = "b" if winner == "a" else "a"
    assert created[0][1].startswith(f"segment/{winner} created (v1)"), results
    code, out = refused[0]
    assert code == 1 and out.startswith(f"segment/{loser} refused (document 1): "), out
    assert CYCLE_AB.format(loser, winner) in out, out
    await wait_segment_applied(worker, winner, 1, settings.partitions)
    run("show", loser, code=1)  # never created

    # 2. Past the API: the evaluator refuses, and it shows.
    (tmp_path / "paris.yaml").write_text(
        'id: paris\nname: Parisians\nstatus: live\nformula: city = "Paris"\n---\n'
        'id: linked\nkind: compound\nformula: in segment "paris"\n')
    run("apply", "-f", str(tmp_path / "paris.yaml"))
    await wait_segment_applied(worker, "paris", 1, settings.partitions)
    await wait_segment_applied(worker, "linked", 1, settings.partitions)
    async with Publisher(settings) as pub:
        await pub.send(SegmentDefinition(id="paris", name="Paris v2", kind="compound",
                                         status="live", formula='in segment "linked"',
                                         version=2))
        await pub.send(SegmentDefinition(id=loser, name=loser, kind="compound", status="live",
                                         formula=f'in segment "{winner}"', version=1))
        await pub.flush()

    async with aiohttp.ClientSession(headers=AUTH) as session:
        async def get(path: str) -> dict:
            async with session.get(worker.url + path) as response:
                return await response.json()

        await wait_caught_up(settings)  # both definitions applied or refused
        summary = await get("/segments/paris")
        assert summary.get("refused_version") == 2, summary
        assert (await get(f"/segments/{loser}")).get("refused_version") == 1
        async with session.get(worker.url + "/metrics") as response:
            metrics = await response.text()

    # The API: v1 in force, v2 refused with the reason.
    assert summary["version"] == 1 and summary["applied_version"] == 1
    assert summary["name"] == "Parisians" and summary["formula"] == 'city = "Paris"'
    assert summary["refused_reason"] == CYCLE_AB.format("paris", "linked")
    assert "segmentflow_segments_refused 2.0" in metrics.splitlines()

    shown = run("show", "paris").stdout
    assert "name:      Parisians" in shown
    assert "version:   1 (applied: 1)" in shown
    assert ("refused:   v2 refused: segment reference cycle: paris -> linked -> paris "
            "(v1 stays in force)") in shown
    assert 'formula:   city = "Paris"' in shown
    shown = run("show", loser).stdout
    assert "status:    refused" in shown and "version:   0 (applied: 0)" in shown
    assert (f"refused:   v1 refused: {CYCLE_AB.format(loser, winner)} "
            "(nothing in force)") in shown

    listing = run("list").stdout.splitlines()
    assert [r.split()[:3] for r in listing[1:5]] == sorted(
        [[winner, "draft", "1"], [loser, "refused", "0"], ["linked", "draft", "1"],
         ["paris", "live", "1"]])
    assert listing[5:] == sorted([
        f"segment/{loser} v1 refused: {CYCLE_AB.format(loser, winner)} (nothing in force)",
        "segment/paris v2 refused: segment reference cycle: paris -> linked -> paris "
        "(v1 stays in force)"])
    items = {s["id"]: s for s in json.loads(run("list", "--json").stdout)["segments"]}
    assert (items["paris"]["refused_version"], items["linked"]["refused_version"]) == (2, None)

    # A later version that is applied clears the refusal; it counts past v2.
    assert run("apply", "-f", str(tmp_path / "paris.yaml")).stdout.splitlines() == [
        "segment/paris updated (v3)", "segment/linked unchanged (v1)"]
    await wait_segment_applied(worker, "paris", 3, settings.partitions)
    shown = run("show", "paris").stdout
    assert "version:   3 (applied: 3)" in shown and "refused:" not in shown
