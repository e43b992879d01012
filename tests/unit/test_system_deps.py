"""deploy/install-system-deps.sh installs only what is needed: the demo and a
worker need Java (and Maven until the Kafka jars are fetched), never
Prometheus; the tests get Prometheus, Chromium (the console's browser
tests) and Node.js (the AsyncAPI validator) too. Run against a fake apt-get on
a PATH without any of the tools."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy/install-system-deps.sh"


def installs(tmp_path: Path, *args: str, jars: bool = False,
             env: dict[str, str] | None = None) -> list[str]:
    """The packages the script asks apt-get for (none: [])."""
    deploy = tmp_path / "deploy"
    (deploy / "kafka/lib").mkdir(parents=True, exist_ok=True)
    shutil.copy(SCRIPT, deploy / SCRIPT.name)
    if jars:
        (deploy / "kafka/lib/.complete").touch()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("dirname", "id"):
        target = bin_dir / tool
        if not target.exists():
            target.symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    log = tmp_path / "apt.log"
    log.write_text("")
    apt = bin_dir / "apt-get"
    apt.write_text(f'#!/bin/bash\necho "$@" >> {log}\n')
    apt.chmod(0o755)
    sudo = bin_dir / "sudo"  # when not root: run the command as is
    sudo.write_text('#!/bin/bash\n"$@"\n')
    sudo.chmod(0o755)
    result = subprocess.run(
        [shutil.which("bash") or "/bin/bash", str(deploy / SCRIPT.name), *args],
        env={"PATH": str(bin_dir), **(env or {})}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    install = [line.split() for line in log.read_text().splitlines() if " install " in
               f" {line} "]
    return [word for line in install for word in line if not word.startswith("-")
            and word != "install"]


def test_kafka_scope_installs_java_and_maven_only(tmp_path):
    assert installs(tmp_path, "kafka") == ["openjdk-17-jre-headless", "maven"]


def test_kafka_scope_needs_no_maven_once_the_jars_are_fetched(tmp_path):
    assert installs(tmp_path, "kafka", jars=True) == ["openjdk-17-jre-headless"]


def test_kafka_scope_installs_nothing_for_an_external_broker(tmp_path):
    assert installs(tmp_path, "kafka", env={"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"}) == []


@pytest.mark.parametrize("args", [(), ("all",)])
def test_tests_scope_adds_prometheus_chromium_and_node(tmp_path, args):
    assert installs(tmp_path, *args) == ["openjdk-17-jre-headless", "maven", "prometheus",
                                         "chromium", "chromium-driver", "nodejs", "npm"]


def test_node_scope_installs_node_and_npm_only(tmp_path):
    assert installs(tmp_path, "node") == ["nodejs", "npm"]


@pytest.mark.parametrize(("target", "scope"), [
    ("demo", "kafka"), ("worker", "kafka"), ("kafka-start", "kafka"),
    ("test", {"all", "node"}), ("test-integration", "all"), ("test-multiworker", "all"),
    ("lint", "node"), ("asyncapi-check", "node"),
])
def test_make_targets_ask_for_their_scope(target, scope):
    make = shutil.which("make")
    assert make, "make is not installed (the README's commands need it)"
    plan = subprocess.run([make, "-n", target], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "MAKEFLAGS": ""}, check=True).stdout
    scopes = {line.split("install-system-deps.sh", 1)[1].split()[0]
              for line in plan.splitlines() if "install-system-deps.sh" in line}
    assert scopes == (scope if isinstance(scope, set) else {scope}), plan
