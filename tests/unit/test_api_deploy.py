"""deploy/: the Grafana dashboard queries metrics the worker exports, the
provisioning and docker-compose agree on names and paths, and promtool
accepts the Prometheus config."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import yaml
from prometheus_client.parser import text_string_to_metric_families

from app.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/segmentflow-dashboard.json"


class FakeState:
    def metrics_snapshot(self) -> dict:
        return {"partitions": 2, "sizes": {"s": 3}, "due_entries": 1, "tick_lag": 0.0,
                "golive": {"s": (10, 1.0)}, "consumer_lag": {0: 0, 1: 4}}


def exposition(segment_labels: bool) -> str:
    metrics = Metrics(segment_labels=segment_labels)
    metrics.watch(FakeState())
    metrics.inputs.labels("contacts", "accepted").inc()
    metrics.dead_letters.labels("invalid").inc()
    metrics.count_changes([SimpleNamespace(segment_id="s", change="joined")])
    metrics.latency_event.observe(0.1)
    metrics.evaluation_seconds.observe(0.001)
    return metrics.exposition().decode()


def exported_series() -> set[str]:
    # The compose worker (the dashboard's) exports per-segment series.
    compose = yaml.safe_load((ROOT / "docker-compose.kafka.yml").read_text())
    assert compose["services"]["worker"]["environment"][
        "SEGMENTFLOW_METRICS_SEGMENT_LABELS"] == "true"
    text = exposition(segment_labels=True)
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_metrics_name_no_segment_unless_enabled() -> None:
    """/metrics is open: by default no segment id is a label value."""
    labels = {k for f in text_string_to_metric_families(exposition(False))
              for s in f.samples for k in s.labels}
    assert "segment" not in labels
    text = exposition(False)
    assert 'segmentflow_membership_changes_total{change="joined"} 1.0' in text
    assert "segmentflow_segments 1.0" in text
    assert 'segment="s"' in exposition(True)


def test_dashboard_queries_only_exported_metrics() -> None:
    exported = exported_series()
    dashboard = json.loads(DASHBOARD.read_text())
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= set(re.findall(r"segmentflow_[a-z_]+", target["expr"]))
    assert used and used <= exported, used - exported
    # Every metric family the worker exports has a panel.
    families = {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in exported}
    panelled = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in used}
    assert families <= panelled, families - panelled


def test_grafana_provisioning_matches_compose() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.kafka.yml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = {m.split(":")[1]: ROOT / m.split(":")[0] for m in grafana["volumes"]}
    for source in mounts.values():
        assert source.exists(), source
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/segmentflow.yml").read_text())
    dashboards_dir = provider["providers"][0]["options"]["path"]
    assert f"{dashboards_dir}/segmentflow-dashboard.json" in mounts
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    assert {p["datasource"]["uid"] for p in json.loads(DASHBOARD.read_text())["panels"]} == {uid}
    assert datasource["datasources"][0]["url"].startswith("http://prometheus:")
    assert "prometheus" in compose["services"]


def test_prometheus_scrapes_the_compose_worker() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.kafka.yml").read_text())
    port = compose["services"]["worker"]["environment"]["SEGMENTFLOW_WEB_PORT"]
    config = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"worker:{port}"]


def test_promtool_accepts_the_prometheus_config() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: apt-get install prometheus (.ci/run does)"
    result = subprocess.run([promtool, "check", "config", str(ROOT / "deploy/prometheus.yml")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
