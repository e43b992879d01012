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


@pytest.mark.parametrize("value", ["faust", "Faust", "anything"])
def test_the_removed_faust_evaluator_is_a_clear_startup_error(
        monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """SEGMENTFLOW_EVALUATOR went with the Faust evaluator (issue #12): a
    worker still configured for it refuses to start and says why, instead
    of running the batch evaluator over state it never wrote."""
    monkeypatch.setenv("SEGMENTFLOW_EVALUATOR", value)
    with pytest.raises(ValueError, match="the Faust evaluator was removed"):
        Settings()
    with pytest.raises(ValueError, match="Unset SEGMENTFLOW_EVALUATOR"):
        Settings(partitions=2)


def test_evaluator_batch_and_the_other_removed_settings_are_ignored(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGMENTFLOW_EVALUATOR", "batch")
    monkeypatch.setenv("SEGMENTFLOW_TICK_INTERVAL", "0.5")
    monkeypatch.setenv("SEGMENTFLOW_STORE", "memory://")
    settings = Settings()
    assert not hasattr(settings, "evaluator") and not hasattr(settings, "tick_interval")
    assert not hasattr(settings, "store")
