"""docker-compose.kafka.yml cannot run here (no Docker engine); at least keep
its broker settings equal to the ones deploy/kafka/kafka.sh uses."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# Differ on purpose: addresses, data paths, and thread sizing for laptops.
NETWORK_OR_PATH = {
    "controller.quorum.voters", "listeners", "advertised.listeners", "log.dirs",
    "listener.security.protocol.map", "num.network.threads", "num.io.threads",
    "log.retention.hours", "log.segment.bytes", "log.cleaner.dedupe.buffer.size",
    "delete.topic.enable", "min.insync.replicas",
}


def template_settings() -> dict[str, str]:
    settings = {}
    for line in (ROOT / "deploy/kafka/server.properties.template").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key] = value
    return settings


def test_compose_broker_matches_local_broker_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.kafka.yml").read_text())
    env = {k: str(v) for k, v in compose["services"]["kafka"]["environment"].items()}
    for key, value in template_settings().items():
        if key in NETWORK_OR_PATH:
            continue
        env_key = "KAFKA_" + key.upper().replace(".", "_")
        assert env.get(env_key) == value, f"{env_key} should be {value!r} like {key}"


def test_compose_worker_uses_the_compose_broker() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.kafka.yml").read_text())
    worker_env = compose["services"]["worker"]["environment"]
    kafka_env = compose["services"]["kafka"]["environment"]
    assert worker_env["KAFKA_BOOTSTRAP_SERVERS"] in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
