"""The field catalogue against a worker on the real broker: ``segmentflow
fields`` lists what inputs carried; a formula naming a field never seen is
accepted with a warning (apply, preview, the API's answer)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from app.cli import cli
from app.client import Publisher
from models.inputs import ContactUpsert, Interaction
from tests.integration.api_helpers import TOKEN
from tests.integration.caught_up import wait_caught_up

pytestmark = pytest.mark.kafka


@pytest.fixture
def settings(settings):
    settings.api_token = TOKEN
    return settings


async def test_fields_and_warnings(settings, worker, tmp_path):
    runner = CliRunner()
    env = {"SEGMENTFLOW_API_URL": worker.url, "SEGMENTFLOW_API_TOKEN": TOKEN}

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, list(args), env=env)
        assert result.exit_code == code, (args, result.output, result.exception)
        return result.output

    now = datetime.now(UTC)
    async with Publisher(settings) as pub:
        for n in range(5):
            await pub.send(ContactUpsert(contact_id=f"c{n}", attributes={
                "city": "Paris", "age": 20 + n, "address": {"zip": "75001"}}))
            await pub.send(Interaction(event_id=f"e{n}", contact_id=f"c{n}", type="purchase",
                                       occurred_at=now, properties={"amount": 9.5}))
        await pub.flush()
    await wait_caught_up(settings)

    listed = json.loads(run("fields", "--json"))
    assert listed["complete"] is True
    assert listed["fields"]["contact"] == {"city": {"string": 5}, "age": {"integer": 5},
                                           "address": {"object": 5},
                                           "address.zip": {"string": 5}}
    assert listed["fields"]["event:purchase"] == {"amount": {"number": 5}}
    table = run("fields").splitlines()
    assert table[0].split() == ["SCOPE", "FIELD", "TYPES", "INPUTS"]
    assert ["contact", "address.zip", "string", "5"] in [row.split() for row in table]

    path = tmp_path / "typo.yaml"
    path.write_text('id: typo\nname: typo\nformula: citty = "Paris" and age > 20\n')
    out = run("apply", "-f", str(path))
    assert out.splitlines() == [
        "segment/typo created (v1)",
        "  warning: contact attribute 'citty' has not been seen on any input yet; "
        "did you mean 'city'?"]
    out = run("preview", "--formula", "sum amont of purchase ever > 3")
    assert ("warning: property of 'purchase' 'amont' has not been seen on any input yet; "
            "did you mean 'amount'?") in out
    path.write_text('id: fine\nname: fine\nformula: city = "Paris" and address.zip = "1"\n')
    assert run("apply", "-f", str(path)) == "segment/fine created (v1)\n"
