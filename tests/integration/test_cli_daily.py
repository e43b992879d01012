"""The daily CLI (issue #14) through click's CliRunner against a real worker
and broker: ``produce`` (valid, invalid, stdin, --partial), ``dead-letters``
(list, --limit, --json, --follow), ``members`` paging / --json / csv,
``apply`` per-document report and all-or-nothing, and exit code 3 when the
broker is down."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import pytest
from click.testing import CliRunner, Result

from app.cli import cli
from app.client import Publisher
from tests.integration.api_helpers import TOKEN
from tests.integration.caught_up import wait_caught_up
from tests.integration.conftest import ROOT
from tests.integration.helpers import wait_segment_applied

INPUTS_JSONL = """\
{"contact_id": "c1", "attributes": {"city": "Paris"}}
{"event_id": "e1", "contact_id": "c1", "type": "purchase", "occurred_at": "2024-05-01T10:00:00Z"}
{"account_id": "acme", "attributes": {"industry": "retail"}}
{"segment_id": "vip", "contact_id": "c1", "op": "add"}
"""

MIXED_YAML = """\
contact_id: c2
attributes: {city: Lyon}
---
event_id: e2
contact_id: c2
type: purchse
occurred_at: 2024-05-01T10:00:00Z
---
colour: blue
"""


def kafka_env(settings) -> dict[str, str]:
    return {"KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "SEGMENTFLOW_TOPIC_PREFIX": settings.topic_prefix}


async def invoke(args: list[str], env: dict[str, str], code: int = 0,
                 stdin: str | None = None) -> Result:
    """The CLI in a thread (Kafka commands run their own event loop)."""
    result = await asyncio.to_thread(CliRunner().invoke, cli, args, input=stdin, env=env)
    assert result.exit_code == code, (args, result.output, result.exception)
    return result


@pytest.mark.kafka
async def test_produce_and_dead_letters(settings, worker, reader, tmp_path):
    env = kafka_env(settings)
    t = settings.topics
    contacts, interactions, accounts, edits = [
        await reader(name) for name in (t.contacts, t.interactions, t.accounts, t.static_edits)]

    # JSON lines, one of each type, told apart by shape: each to its topic and key.
    path = tmp_path / "inputs.jsonl"
    path.write_text(INPUTS_JSONL)
    result = await invoke(["produce", "-f", str(path)], env)
    assert result.stdout == "produced 4 inputs\n"
    await contacts.wait_for(lambda v: len(v) == 1)
    await interactions.wait_for(lambda v: len(v) == 1)
    await accounts.wait_for(lambda v: len(v) == 1)
    await edits.wait_for(lambda v: len(v) == 1)
    assert [k for k, _ in contacts.records + interactions.records + edits.records] == [b"c1"] * 3
    assert accounts.records[0][0] == b"acme"
    assert interactions.values()[0]["type"] == "purchase"

    # Invalid documents: one line each with the document's number; nothing sent.
    bad = tmp_path / "mixed.yaml"
    bad.write_text(MIXED_YAML)
    result = await invoke(["produce", "-f", str(bad)], env, code=1)
    lines = result.stderr.splitlines()
    # checked against the declared event types, as ingest checks it (docs/event-types.md)
    assert lines[0].startswith('invalid: document 2 (interaction): undeclared event type '
                               '"purchse" (declared: email_bounced, '), lines
    assert lines[1].startswith("invalid: document 3: cannot tell its type"), lines
    assert lines[2] == ("nothing produced: 2 of 3 documents invalid "
                        "(--partial sends the valid ones)")
    assert result.stdout == ""
    # --partial sends the valid one (c2) and still exits 1; c2 arrives once,
    # so the first run sent nothing.
    result = await invoke(["produce", "-f", str(bad), "--partial"], env, code=1)
    assert result.stdout == "produced 1 inputs (2 invalid, not sent)\n"

    # stdin, with an explicit type (a contact delete).
    result = await invoke(["produce", "-f", "-", "--type", "contact"], env,
                          stdin='{"op": "delete", "contact_id": "c9"}\n')
    assert result.stdout == "produced 1 inputs\n"
    values = await contacts.wait_for(lambda v: len(v) == 3)
    assert [v["contact_id"] for v in values] == ["c1", "c2", "c9"]
    assert values[2]["op"] == "delete"

    # Garbage published behind the CLI's back goes to the dead letters.
    async with Publisher(settings) as pub:
        await pub.send_raw(t.contacts, b"not json at all", key=b"k1")
        await pub.send_raw(t.interactions, b'{"event_id": "e3"}', key=b"k2")
        await pub.flush()
    await wait_caught_up(settings)  # ingest dead-lettered both, acknowledged
    result = await invoke(["dead-letters", "--json"], env)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 2, records
    by_topic = {r["source_topic"]: r for r in records}
    assert by_topic[t.contacts]["preview"] == "not json at all"
    assert "invalid input" in by_topic[t.interactions]["reason"]
    assert {"partition", "offset", "raw_base64", "at"} <= set(by_topic[t.contacts])

    human = (await invoke(["dead-letters"], env)).stdout
    c = by_topic[t.contacts]
    assert f"  {t.contacts}/{c['partition']}@{c['offset']}  {c['reason']}" in human
    assert "    value: 'not json at all'" in human
    newest = (await invoke(["dead-letters", "--limit", "1", "--json"], env)).stdout
    assert [json.loads(line) for line in newest.splitlines()] == [records[-1]]

    # --follow: the listing, then new dead letters as they come (a real process).
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "dead-letters", "--follow", "--json",
        env={**os.environ, **env}, cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    try:
        for _ in range(2):
            await asyncio.wait_for(proc.stdout.readline(), 30)
        async with Publisher(settings) as pub:
            await pub.send_raw(t.accounts, b"[1, 2]", key=b"k3")
            await pub.flush()
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert json.loads(line)["source_topic"] == t.accounts
    finally:
        proc.terminate()
        await proc.wait()


@pytest.fixture
def api_settings(settings):
    settings.api_token = TOKEN
    return settings


@pytest.mark.kafka
async def test_members_paging_and_apply_report(api_settings, worker, tmp_path):
    settings = api_settings
    runner = CliRunner()
    env = {"SEGMENTFLOW_API_URL": worker.url, "SEGMENTFLOW_API_TOKEN": TOKEN}

    def run(*args: str, code: int = 0) -> Result:
        result = runner.invoke(cli, list(args), env=env)
        assert result.exit_code == code, (args, result.output, result.exception)
        return result

    people = "\n".join(json.dumps({"contact_id": f"p{i}", "attributes": {"city": "Paris"}})
                       for i in range(5))
    await invoke(["produce", "-f", "-"], kafka_env(settings), stdin=people)
    await wait_caught_up(settings)  # the contacts' fields are in the catalogue

    # apply: one line per document; a second apply reports unchanged / updated;
    # 'age' was on no input: a warning line (accepted all the same).
    age = "  warning: contact attribute 'age' has not been seen on any input yet"
    first = tmp_path / "first.yaml"
    first.write_text('id: paris\nstatus: live\nformula: city = "Paris"\n---\n'
                     'id: adults\nformula: age >= 18\n')
    assert run("apply", "-f", str(first)).stdout.splitlines() == [
        "segment/paris created (v1)", "segment/adults created (v1)", age]
    await wait_segment_applied(worker, "paris", 1, settings.partitions)
    await wait_segment_applied(worker, "adults", 1, settings.partitions)
    second = tmp_path / "second.yaml"
    second.write_text('id: paris\nstatus: live\nformula: city = "Paris"\n---\n'
                      'id: adults\nformula: age >= 21\n---\nid: kids\nformula: age < 12\n')
    assert run("apply", "-f", str(second)).stdout.splitlines() == [
        "segment/paris unchanged (v1)", "segment/adults updated (v2)", age,
        "segment/kids created (v1)", age]

    # All or nothing: a reference cycle inside the file, a document without
    # an id and a bad formula refuse the file; nothing is written.
    bad = tmp_path / "bad.yaml"
    bad.write_text('id: fresh\nformula: age > 1\n---\n'
                   'id: loop-a\nkind: compound\nformula: in segment "loop-b"\n---\n'
                   'id: loop-b\nkind: compound\nformula: in segment "loop-a"\n---\n'
                   'name: nameless\n---\nid: broken\nformula: city = = "x"\n')
    result = run("apply", "-f", str(bad), code=1)
    assert result.stdout.splitlines() == [
        "segment/fresh not applied (document 1): another document was refused",
        "segment/loop-a not applied (document 2): another document was refused",
        "segment/loop-b refused (document 3): segment reference cycle: "
        "loop-b -> loop-a -> loop-b",
        "document 4 refused: every segment needs an 'id' (got {'name': 'nameless'})",
        "segment/broken refused (document 5): invalid: formula: Value error, line 1, "
        "column 8: expected a value (string, number, date…) after \"=\" but found \"=\""]
    assert "error: 3 of 5 documents refused; 0 written" in result.stderr
    ids = {s["id"] for s in json.loads(run("list", "--json").stdout)["segments"]}
    assert {"fresh", "loop-a"}.isdisjoint(ids)
    # --partial writes the valid ones, reports the rest, exits 1.
    report = json.loads(run("apply", "-f", str(bad), "--partial", "--json", code=1).stdout)
    assert [(r["index"], r["id"], r["result"]) for r in report] == [
        (1, "fresh", "created"), (2, "loop-a", "created"), (3, "loop-b", "refused"),
        (4, None, "refused"), (5, "broken", "refused")]

    # members: the total and the next cursor (stderr), --json, csv export.
    # The five contacts were either backfilled (paris applied, backfill done)
    # or evaluated live once applied (caught up).
    await wait_caught_up(settings)
    assert json.loads(run("members", "paris", "--json").stdout)["total"] == 5
    page = run("members", "paris", "--limit", "2")
    assert len(page.stdout.split()) == 2
    hint = page.stderr.strip()
    assert hint.startswith("showing 2 of 5; next: --cursor "), hint
    cursor = hint.rsplit(" ", 1)[1]
    data = json.loads(run("members", "paris", "--limit", "2", "--cursor", cursor,
                          "--json").stdout)
    assert len(data["members"]) == 2 and data["total"] == 5 and data["next_cursor"]
    assert set(data["members"]).isdisjoint(page.stdout.split())
    last = run("members", "paris", "--limit", "2", "--cursor", data["next_cursor"])
    assert len(last.stdout.split()) == 1 and last.stderr.strip() == "showing 1 of 5"
    csv = run("members", "paris", "--limit", "2", "--all", "--format", "csv")
    header, *rows = csv.stdout.splitlines()
    assert header == "contact_id" and sorted(rows) == [f"p{i}" for i in range(5)]
    everything = json.loads(run("members", "paris", "--all", "--limit", "3", "--json").stdout)
    assert everything["next_cursor"] is None and len(everything["members"]) == 5


@pytest.mark.parametrize("args", [
    ["watch"], ["produce-demo", "--source", "synthetic", "--events", "1"],
    ["produce", "-f", "-"], ["dead-letters"]])
async def test_broker_down_is_one_line_and_exit_3(args):
    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    started = time.monotonic()
    result = await asyncio.wait_for(
        invoke(args, env, code=3, stdin='{"contact_id": "c1"}'), 30)
    assert time.monotonic() - started < 30
    assert result.stdout == ""
    assert result.stderr == ("error: cannot reach Kafka at 127.0.0.1:1 "
                             "(KAFKA_BOOTSTRAP_SERVERS): is the broker running?\n")
