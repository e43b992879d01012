"""The OpenAPI document stays in sync with the routes the worker serves, and
every reference in it resolves."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest

from app.api.openapi import openapi_document, response_schema
from app.faust_app import create_app
from app.settings import Settings

METHODS = {"get", "post", "put", "delete", "patch"}


@pytest.fixture(scope="module")
def served() -> set[tuple[str, str]]:
    app = create_app(Settings(topic_prefix="openapi-test"))
    # The web console (/ui: its page, files and back-end routes) is not the API.
    return {(route.resource.canonical, route.method.lower())
            for route in app.web.web_app.router.routes()
            if route.method.lower() in METHODS
            and not route.resource.canonical.startswith("/ui")}


def test_every_served_route_is_documented_and_nothing_else(served) -> None:
    doc = openapi_document()
    documented = {(path, method) for path, ops in doc["paths"].items()
                  for method in ops if method in METHODS}
    assert served == documented


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_reference_resolves() -> None:
    doc = openapi_document()
    refs = set(_refs(doc))
    assert refs
    for ref in refs:
        name = re.fullmatch(r"#/components/schemas/(.+)", ref)
        assert name and name.group(1) in doc["components"]["schemas"], ref


def test_every_operation_documents_errors_in_the_error_format() -> None:
    doc = openapi_document()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if method not in METHODS:
                continue
            for status in op["responses"]:
                if path == "/ready":  # 503 "not ready" is the readiness document itself
                    continue
                if int(status) >= 400:
                    schema = response_schema(doc, path, method, int(status))
                    jsonschema.validate(
                        {"error": {"code": "x", "message": "y", "details": []}}, schema)
            if "security" in op:  # writes, and reads once a token is configured
                assert {"401", "403"} <= set(op["responses"]), (path, method)
            if method != "get" or "{" in path:  # bodies, or ids in the path
                assert "422" in op["responses"], (path, method)
            if method != "get":
                assert {"413", "503"} <= set(op["responses"]), (path, method)
    for path in ("/health", "/ready", "/metrics", "/openapi.json", "/asyncapi.json",
                 "/asyncapi.yaml"):
        assert "security" not in doc["paths"][path]["get"], path  # always open


def test_segment_definition_schema_is_the_models() -> None:
    doc = openapi_document()
    schema = response_schema(doc, "/segments", "post", 202)
    jsonschema.validate({"id": "a", "name": "a", "formula": "x = 1", "version": 1,
                         "status": "live", "kind": "dynamic", "description": "",
                         "include": [], "exclude": [], "timezone": "UTC",
                         "condition": {"node": "compare", "field": "x", "op": "=", "value": 1}},
                        schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"id": "a", "name": "a", "status": "sleeping"}, schema)
