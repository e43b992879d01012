"""deploy/kafka/kafka.sh: starting twice is harmless and status tells the truth."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.integration.conftest import KAFKA_SCRIPT

pytestmark = pytest.mark.kafka


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(KAFKA_SCRIPT), *args], capture_output=True, text=True,
                          timeout=120)


def test_start_twice_is_harmless(kafka_bootstrap: str) -> None:
    again = run("start")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines()[-1] == kafka_bootstrap
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        assert "already running" in again.stderr
        status = run("status")
        assert status.returncode == 0 and status.stdout.startswith("running")


def test_unknown_command_is_refused() -> None:
    result = run("explode")
    assert result.returncode == 2
    assert "usage" in result.stderr
