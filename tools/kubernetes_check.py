"""Offline check of the Kubernetes manifests (deploy/kubernetes).

Two layers, both without a cluster or a network:

1. every object validates against the Kubernetes JSON schemas of the
   versions in ``K8S_VERSIONS`` (the ``kubernetes-validate`` package ships
   them; ``strict``: unknown fields such as a misspelt ``replica`` are
   errors, as ``kubectl apply --validate=strict`` would say);
2. what a schema cannot see: the StatefulSet's headless Service exists, the
   selectors match the pods, the probes and the Prometheus annotations name
   endpoints the API serves (its OpenAPI document) on the port the worker
   listens on, every ConfigMap key is a setting the worker reads
   (``app.settings.Settings``, which silently ignores unknown names), the API
   tokens come from the Secret and only from it, RocksDB's directory is the
   persistent volume, and replicas do not exceed the partitions.

``python -m tools.kubernetes_check [DIR]`` (``make k8s-check``, part of
``make lint``) prints each problem and exits 1 when there is one;
tests/unit/test_kubernetes.py runs it on the manifests and on broken copies.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from pydantic import ValidationError

from app.api.openapi import openapi_document
from app.settings import Settings

__all__ = ["K8S_VERSIONS", "MANIFESTS", "load", "main", "problems"]

MANIFESTS = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
# The oldest minor version still commonly run, and the newest the validator ships.
K8S_VERSIONS = ("1.30.0", "1.37.0")
SECRET_SETTINGS = ("SEGMENTFLOW_API_TOKEN", "SEGMENTFLOW_API_READ_TOKEN")

Doc = dict[str, Any]


def _name(doc: Doc) -> str:
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


def load(directory: Path = MANIFESTS) -> tuple[list[tuple[str, Doc]], list[str]]:
    """(file, object) for the kustomization's resources and the example
    Secret, and the problems found while reading them."""
    found: list[str] = []
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    resources = list(kustomization.get("resources", []))
    examples = sorted(p.name for p in directory.glob("*.example.yaml"))
    for path in sorted(directory.glob("*.yaml")):
        if path.name not in {"kustomization.yaml", *resources, *examples}:
            found.append(f"{path.name}: not listed in kustomization.yaml resources")
    docs: list[tuple[str, Doc]] = []
    for name in [*resources, *examples]:
        path = directory / name
        if not path.is_file():
            found.append(f"kustomization.yaml: resource {name} does not exist")
            continue
        try:
            loaded = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as exc:
            found.append(f"{name}: not YAML: {exc}")
            continue
        docs.extend((name, doc) for doc in loaded if doc is not None)
    return docs, found


def _schema_problems(docs: list[tuple[str, Doc]]) -> list[str]:
    found = []
    for file, doc in docs:
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.absolute_path) or "(object)"
                found.append(f"{file}: {_name(doc)}: Kubernetes {version}: at {where}: "
                             f"{exc.message}")
            except kubernetes_validate.SchemaNotFoundError:
                found.append(f"{file}: {_name(doc)}: Kubernetes {version} has no "
                             f"{doc.get('apiVersion')} {doc.get('kind')}")
            except Exception as exc:  # an object too broken for the validator
                found.append(f"{file}: {_name(doc)}: Kubernetes {version}: {exc}")
    return found


def _one(docs: list[tuple[str, Doc]], kind: str, found: list[str], **where: Any) -> Doc:
    matching = [doc for _, doc in docs if doc.get("kind") == kind
                and all(_get(doc, k) == v for k, v in where.items())]
    if len(matching) != 1:
        found.append(f"expected one {kind} {where or ''}, found {len(matching)}")
        return {}
    return matching[0]


def _get(doc: Any, dotted: str, default: Any = None) -> Any:
    for part in dotted.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return default
        doc = doc[part]
    return doc


def _matches(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _port(port: Any, ports: dict[str, int]) -> int | None:
    return ports.get(port) if isinstance(port, str) else port


def _semantic_problems(docs: list[tuple[str, Doc]]) -> list[str]:
    found: list[str] = []
    sts = _one(docs, "StatefulSet", found)
    config = _one(docs, "ConfigMap", found)
    secret = _one(docs, "Secret", found)
    if not sts or not config:
        return found
    settings_env: dict[str, str] = config.get("data") or {}
    known = {"KAFKA_BOOTSTRAP_SERVERS"} | {
        f"SEGMENTFLOW_{field.upper()}" for field in Settings.model_fields}
    for key in settings_env:
        if key not in known:
            found.append(f"ConfigMap: {key} is not a setting (app/settings.py)")
        if key in SECRET_SETTINGS:
            found.append(f"ConfigMap: {key} is a token: it belongs in the Secret")
    values = {("bootstrap_servers" if k == "KAFKA_BOOTSTRAP_SERVERS"
               else k.removeprefix("SEGMENTFLOW_").lower()): v
              for k, v in settings_env.items() if k in known}
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        found.append(f"ConfigMap: settings refused: {exc}")
        settings = Settings()

    template = _get(sts, "spec.template", {})
    labels = _get(template, "metadata.labels", {}) or {}
    if not _matches(_get(sts, "spec.selector.matchLabels"), labels):
        found.append("StatefulSet: selector does not match the pod template's labels")
    containers = _get(template, "spec.containers", []) or []
    if len(containers) != 1:
        found.append(f"StatefulSet: expected one container, found {len(containers)}")
        return found
    worker = containers[0]
    ports = {p.get("name"): p.get("containerPort") for p in worker.get("ports", [])}
    if ports.get("http") != settings.web_port:
        found.append(f"StatefulSet: container port 'http' is {ports.get('http')}, the worker "
                     f"listens on SEGMENTFLOW_WEB_PORT={settings.web_port}")

    # Settings and tokens reach the worker.
    if {"name": config["metadata"]["name"]} not in [
            ref.get("configMapRef") for ref in worker.get("envFrom", [])]:
        found.append(f"StatefulSet: envFrom does not name ConfigMap {config['metadata']['name']}")
    env = {e.get("name"): e for e in worker.get("env", [])}
    for name in SECRET_SETTINGS:
        ref = _get(env.get(name), "valueFrom.secretKeyRef")
        if ref is None:
            found.append(f"StatefulSet: {name} does not come from a Secret (secretKeyRef)")
        elif secret and (ref.get("name") != secret["metadata"]["name"]
                         or ref.get("key") not in (secret.get("stringData") or {})
                         | (secret.get("data") or {})):
            found.append(f"StatefulSet: {name} names {ref.get('name')}/{ref.get('key')}, "
                         f"not a key of Secret {secret['metadata']['name']}")
    if _get(env.get("SEGMENTFLOW_WEB_HOST"), "valueFrom.fieldRef.fieldPath") != "status.podIP":
        found.append("StatefulSet: SEGMENTFLOW_WEB_HOST must be the pod's IP (status.podIP): "
                     "it is the URL the other workers call")

    # Probes and scraping: endpoints the API serves, on its port.
    paths = set(openapi_document()["paths"])
    for probe, want in (("readinessProbe", "/ready"), ("livenessProbe", "/health"),
                        ("startupProbe", "/health")):
        get = _get(worker, f"{probe}.httpGet")
        if get is None:
            found.append(f"StatefulSet: no {probe} (GET {want})")
            continue
        if get.get("path") != want or get.get("path") not in paths:
            found.append(f"StatefulSet: {probe} GETs {get.get('path')}, expected {want}")
        if _port(get.get("port"), ports) != settings.web_port:
            found.append(f"StatefulSet: {probe} port {get.get('port')} is not the API's")
    notes = _get(template, "metadata.annotations", {}) or {}
    if notes.get("prometheus.io/scrape") != "true":
        found.append("StatefulSet: pods lack the annotation prometheus.io/scrape: 'true'")
    if notes.get("prometheus.io/path") != "/metrics" or "/metrics" not in paths:
        found.append(f"StatefulSet: prometheus.io/path is {notes.get('prometheus.io/path')}, "
                     "expected /metrics")
    if notes.get("prometheus.io/port") != str(settings.web_port):
        found.append(f"StatefulSet: prometheus.io/port is {notes.get('prometheus.io/port')}, "
                     f"the API listens on {settings.web_port}")

    # RocksDB on the persistent volume.
    if "SEGMENTFLOW_DATA_DIR" not in settings_env:
        found.append("ConfigMap: SEGMENTFLOW_DATA_DIR is not set (the default is relative)")
    claims = {_get(c, "metadata.name") for c in _get(sts, "spec.volumeClaimTemplates", []) or []}
    mounts = {m.get("mountPath"): m.get("name") for m in worker.get("volumeMounts", [])}
    if mounts.get(str(settings.data_dir)) not in claims:
        found.append(f"StatefulSet: SEGMENTFLOW_DATA_DIR ({settings.data_dir}) is not a "
                     "volumeClaimTemplates volume")
    replicas = _get(sts, "spec.replicas", 1)
    if replicas > settings.partitions:
        found.append(f"StatefulSet: {replicas} replicas for {settings.partitions} partitions: "
                     "workers without a partition are never ready")

    # Services.
    headless = _one(docs, "Service", found, **{"spec.clusterIP": "None"})
    if headless and _get(sts, "spec.serviceName") != headless["metadata"]["name"]:
        found.append(f"StatefulSet: serviceName {_get(sts, 'spec.serviceName')} is not the "
                     f"headless Service {headless['metadata']['name']}")
    for _, service in docs:
        if service.get("kind") != "Service":
            continue
        if not _matches(_get(service, "spec.selector"), labels):
            found.append(f"{_name(service)}: selector does not match the workers")
        for port in _get(service, "spec.ports", []) or []:
            if _port(port.get("targetPort", port.get("port")), ports) != settings.web_port:
                found.append(f"{_name(service)}: targetPort {port.get('targetPort')} is not "
                             "the API's port")
    for _, pdb in docs:
        if pdb.get("kind") == "PodDisruptionBudget" and not _matches(
                _get(pdb, "spec.selector.matchLabels"), labels):
            found.append(f"{_name(pdb)}: selector does not match the workers")
    return found


def problems(directory: Path = MANIFESTS) -> list[str]:
    docs, found = load(directory)
    return found + _schema_problems(docs) + _semantic_problems(docs)


def main(argv: list[str] | None = None) -> int:
    directory = Path(argv[0]) if argv else MANIFESTS
    found = problems(directory)
    for problem in found:
        print(problem)
    if found:
        print(f"{directory}: {len(found)} problems")
        return 1
    docs, _ = load(directory)
    print(f"{directory}: {len(docs)} objects valid (Kubernetes {', '.join(K8S_VERSIONS)}, "
          "strict) and consistent with the worker's settings and API")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
