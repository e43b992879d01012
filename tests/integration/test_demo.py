"""``segmentflow demo`` through the real CLI against the real broker, twice
on fresh topics: the same standard output both times (the demo is
deterministic: event clock, a fixed replay order, each day's changes printed
once processed, sorted by event time), behavioural segments with members,
and windows that expire during the synthetic trickle."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, free_port

pytestmark = pytest.mark.kafka

# Windowed segments of deploy/demo/segments.json.
BEHAVIOURAL = ("frequent-buyers", "big-spenders", "returners")


def run_demo(kafka_bootstrap: str, data_dir: Path) -> str:
    """One demo run (1 day and a bit of history, then 32 synthetic days
    without pacing); returns its standard output."""
    prefix = f"t-{uuid.uuid4().hex[:8]}-demo"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "SEGMENTFLOW_DATA_DIR": str(data_dir)}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo", "--events", "2000", "--trickle-days", "32",
         "--pace", "0", "--prefix", prefix, "--web-port", str(free_port())],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # What is specific to the run (topics, timings, the API) goes to stderr.
    assert prefix in result.stderr and "curl -s http://127.0.0.1:" in result.stderr
    return result.stdout


def final_sizes(out: str) -> dict[str, int]:
    table = out[out.rindex("segment sizes at"):]
    return {m[1]: int(m[2]) for m in re.finditer(r"^  (\S+) +(-?\d+)$", table, re.M)}


def test_demo_prints_the_same_changes_every_run(kafka_bootstrap, tmp_path):
    first = run_demo(kafka_bootstrap, tmp_path / "first")
    second = run_demo(kafka_bootstrap, tmp_path / "second")
    assert first == second
    changes = [line for line in first.splitlines() if re.match(r"^\d{4}-\d\d-\d\dT", line)]
    assert len(changes) > 50, first[-2000:]
    # Event time, not wall time: the history is of 2010-12.
    assert all(line.startswith(("2010-", "2011-")) for line in changes)
    sizes = final_sizes(first)
    assert any(sizes[s] > 0 for s in BEHAVIOURAL), sizes
    # Joined while buying, left when the 30-day window expired in the trickle.
    assert re.search(r"\+ joined +frequent-buyers .*\(interaction ", first)
    assert re.search(r"- left +frequent-buyers .*\(time\)", first)
