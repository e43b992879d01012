"""Preview over the retained history and the impact of a change (issue 13
items 5 and 6), against a worker on the real broker: a draft previewed after
the data counts every retained interaction; ``segmentflow apply --dry-run``
of an edited live segment lists exactly who would join and who would leave,
and writes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from app.cli import cli
from app.client import Publisher
from models.inputs import Interaction
from tests.integration.api_helpers import TOKEN
from tests.integration.caught_up import wait_caught_up
from tests.integration.helpers import wait_segment_applied

pytestmark = pytest.mark.kafka

# contact -> days since each of its purchases
PURCHASES = {"p3": [3], "p20": [20], "p45": [45, 50], "p80": [80], "p200": [200],
             "never": []}
ACTIVE = ("id: active\nname: Active\nstatus: live\n"
          "formula: performed purchase within last {} days\n")


@pytest.fixture
def settings(settings):
    settings.api_token = TOKEN
    return settings


async def test_preview_and_dry_run_over_retained_history(settings, worker, tmp_path):
    runner = CliRunner()
    env = {"SEGMENTFLOW_API_URL": worker.url, "SEGMENTFLOW_API_TOKEN": TOKEN}

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, list(args), env=env)
        assert result.exit_code == code, (args, result.output, result.exception)
        return result.output

    now = datetime.now(UTC)
    async with Publisher(settings) as pub:
        for cid, ages in PURCHASES.items():
            await pub.send(Interaction(event_id=f"{cid}-signup", contact_id=cid,
                                       type="form_submitted", occurred_at=now - timedelta(days=1),
                                       properties={}))
            for n, days in enumerate(ages):
                await pub.send(Interaction(
                    event_id=f"{cid}-{n}", contact_id=cid, type="purchase",
                    occurred_at=now - timedelta(days=days), properties={"amount": 10}))
        await pub.flush()
    await wait_caught_up(settings)

    # No segment reads purchases yet: the preview counts the retained ones.
    out = json.loads(run("preview", "--formula", "performed purchase ever", "--json"))
    assert out["size"] == 5 and out["impact"] == {
        "join": 5, "leave": 0, "join_sample": out["impact"]["join_sample"], "leave_sample": []}
    assert out["history"]["retained_since"] is not None and "ever" in out["history"]["note"]

    path = tmp_path / "active.yaml"
    path.write_text(ACTIVE.format(30))
    assert run("apply", "-f", str(path)) == "segment/active created (v1)\n"
    await wait_segment_applied(worker, "active", 1, settings.partitions)
    assert json.loads(run("show", "active", "--json"))["member_count"] == 2  # p3, p20

    # Widen to 90 days: p45 and p80 would join, nobody leaves.
    path.write_text(ACTIVE.format(90))
    out = run("apply", "-f", str(path), "--dry-run")
    first, *samples = out.splitlines()
    assert first == "segment/active would have 4 members: +2 join, -0 leave"
    assert samples[0].startswith("  + ") and set(samples[0][4:].split(", ")) == {"p45", "p80"}
    # Narrow to 7 days: p20 would leave.
    path.write_text(ACTIVE.format(7))
    data = json.loads(run("apply", "-f", str(path), "--dry-run", "--json"))
    (item,) = data if isinstance(data, list) else data["items"]
    assert item["result"] == "would update"
    impact = item["preview"]["impact"]
    assert (impact["join"], impact["leave"], impact["leave_sample"]) == (0, 1, ["p20"])

    # Nothing was written: still version 1 with its two members.
    shown = json.loads(run("show", "active", "--json"))
    assert shown["version"] == 1 and shown["member_count"] == 2

    # Backtest: the size at the end of each of the last 60 days, from the
    # retained purchases, against a count made here from PURCHASES.
    first = (now - timedelta(days=60)).date().isoformat()
    out = json.loads(run("backtest", "--segment", "active", "--from", first, "--json"))
    series = out["series"]
    assert len(series) == 61
    for point in series:
        at = datetime.fromisoformat(point["at"])
        want = sum(any(at - timedelta(days=30) <= now - timedelta(days=d) <= at for d in ages)
                   for ages in PURCHASES.values())
        assert point["size"] == want, point
    assert {p["size"] for p in series} != {series[0]["size"]}  # it changed over time
    chart = run("backtest", "--formula", "performed purchase ever", "--from", first)
    assert chart.splitlines()[-3].endswith("  5")  # today: all five buyers
    out = run("backtest", "--formula", "performed purchase ever", "--from", "2000-01-01",
              code=1)
    assert "before the retained history" in out
