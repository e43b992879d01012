"""Settings: explicit values win over the environment, the environment over defaults."""

from __future__ import annotations

import pytest

from app.settings import Settings


def test_explicit_bootstrap_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "env-host:1")
    assert Settings(bootstrap_servers="explicit:2").bootstrap_servers == "explicit:2"
    assert Settings().bootstrap_servers == "env-host:1"


def test_prefixed_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("SEGMENTFLOW_PARTITIONS", "3")
    monkeypatch.setenv("SEGMENTFLOW_CLOCK", "event")
    settings = Settings()
    assert (settings.partitions, settings.clock) == (3, "event")
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.topics.evaluator_input == "segmentflow.evaluator-input"


def test_upstream_topics_can_be_renamed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGMENTFLOW_TOPIC_PREFIX", "sf")
    monkeypatch.setenv("SEGMENTFLOW_INTERACTIONS_TOPIC", "tracking.events")
    topics = Settings().topics
    assert topics.interactions == "tracking.events"
    assert topics.contacts == "sf.contacts"
    assert topics.membership_changes == "sf.membership-changes"
