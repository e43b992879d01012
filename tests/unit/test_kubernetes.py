"""deploy/kubernetes passes the offline check (tools/kubernetes_check.py:
the Kubernetes JSON schemas, strict, and consistency with the worker's
settings and API), and broken copies of it do not."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.kubernetes_check import MANIFESTS, main, problems


def test_the_manifests_pass(capsys) -> None:
    assert problems() == []
    assert main([]) == 0
    assert "7 objects valid" in capsys.readouterr().out


def _worker(docs: dict[str, Any]) -> dict[str, Any]:
    return docs["statefulset.yaml"]["spec"]["template"]["spec"]["containers"][0]


def _env(docs: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in _worker(docs)["env"] if e["name"] == name)


# case -> (change to the parsed files, a problem it must cause)
BROKEN: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "misspelt field": (
        lambda d: d["statefulset.yaml"]["spec"].update(replica=2),
        "statefulset.yaml: StatefulSet/segmentflow: Kubernetes 1.30.0: at spec: "
        "Additional properties are not allowed ('replica' was unexpected)"),
    "wrong type": (
        lambda d: _worker(d)["ports"][0].update(containerPort="6066"),
        "at spec.template.spec.containers.0.ports.0.containerPort: '6066' is not of type "
        "'integer'"),
    "missing required field": (
        lambda d: d["statefulset.yaml"]["spec"].pop("selector"),
        "'selector' is a required property"),
    "unknown kind": (
        lambda d: d["poddisruptionbudget.yaml"].update(apiVersion="policy/v1beta1"),
        "Kubernetes 1.30.0 has no policy/v1beta1 PodDisruptionBudget"),
    "readiness on a path the API does not serve": (
        lambda d: _worker(d)["readinessProbe"]["httpGet"].update(path="/readyz"),
        "readinessProbe GETs /readyz, expected /ready"),
    "liveness on the readiness endpoint": (
        lambda d: _worker(d)["livenessProbe"]["httpGet"].update(path="/ready"),
        "livenessProbe GETs /ready, expected /health"),
    "probe on another port": (
        lambda d: _worker(d)["readinessProbe"]["httpGet"].update(port=8080),
        "readinessProbe port 8080 is not the API's"),
    "scrape annotation missing": (
        lambda d: d["statefulset.yaml"]["spec"]["template"]["metadata"]["annotations"].pop(
            "prometheus.io/scrape"),
        "prometheus.io/scrape"),
    "misspelt setting": (
        lambda d: d["configmap.yaml"]["data"].update(SEGMENTFLOW_PARTITION="8"),
        "ConfigMap: SEGMENTFLOW_PARTITION is not a setting"),
    "invalid setting": (
        lambda d: d["configmap.yaml"]["data"].update(SEGMENTFLOW_PARTITIONS="0"),
        "ConfigMap: settings refused"),
    "token in the ConfigMap": (
        lambda d: d["configmap.yaml"]["data"].update(SEGMENTFLOW_API_TOKEN="t0ken"),
        "SEGMENTFLOW_API_TOKEN is a token: it belongs in the Secret"),
    "token as plain value": (
        lambda d: _env(d, "SEGMENTFLOW_API_TOKEN").update(value="t0ken") or _env(
            d, "SEGMENTFLOW_API_TOKEN").pop("valueFrom"),
        "SEGMENTFLOW_API_TOKEN does not come from a Secret"),
    "token key not in the Secret": (
        lambda d: _env(d, "SEGMENTFLOW_API_TOKEN")["valueFrom"]["secretKeyRef"].update(
            key="token"),
        "names segmentflow-api/token, not a key of Secret segmentflow-api"),
    "RocksDB off the volume": (
        lambda d: d["configmap.yaml"]["data"].update(SEGMENTFLOW_DATA_DIR="/tmp/data"),
        "SEGMENTFLOW_DATA_DIR (/tmp/data) is not a volumeClaimTemplates volume"),
    "more replicas than partitions": (
        lambda d: d["statefulset.yaml"]["spec"].update(replicas=9),
        "9 replicas for 8 partitions"),
    "no headless service": (
        lambda d: d["service-headless.yaml"]["spec"].pop("clusterIP"),
        "expected one Service {'spec.clusterIP': 'None'}, found 0"),
    "service selects nothing": (
        lambda d: d["service-api.yaml"]["spec"].update(selector={"app": "segmentflow"}),
        "Service/segmentflow: selector does not match the workers"),
    "peers' URL not the pod's": (
        lambda d: _env(d, "SEGMENTFLOW_WEB_HOST").update(value="0.0.0.0") or _env(
            d, "SEGMENTFLOW_WEB_HOST").pop("valueFrom"),
        "SEGMENTFLOW_WEB_HOST must be the pod's IP"),
}


def _broken_copy(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    target = tmp_path / "kubernetes"
    shutil.copytree(MANIFESTS, target)
    docs = {p.name: yaml.safe_load(p.read_text()) for p in target.glob("*.yaml")}
    change(docs)
    for name, doc in docs.items():
        (target / name).write_text(yaml.safe_dump(doc, sort_keys=False))
    return target


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_manifest_is_rejected(tmp_path, capsys, case) -> None:
    change, expected = BROKEN[case]
    target = _broken_copy(tmp_path, change)
    found = problems(target)
    assert any(expected in problem for problem in found), found
    assert main([str(target)]) == 1
    assert "problems" in capsys.readouterr().out


def test_an_unlisted_manifest_is_rejected(tmp_path) -> None:
    target = _broken_copy(tmp_path, lambda d: None)
    (target / "extra.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n")
    assert "extra.yaml: not listed in kustomization.yaml resources" in problems(target)
    (target / "configmap.yaml").unlink()
    assert "kustomization.yaml: resource configmap.yaml does not exist" in problems(target)


def test_a_round_trip_copy_passes(tmp_path) -> None:
    """The broken copies differ from the manifests by their change only."""
    assert problems(_broken_copy(tmp_path, lambda d: None)) == []
