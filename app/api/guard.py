"""Request guards: bearer-token authorization and bounded, parsed bodies.

Writes need ``Authorization: Bearer <SEGMENTFLOW_API_TOKEN>``. With no token
configured, writes are refused (401) unless ``SEGMENTFLOW_API_OPEN_WRITES``
is true (local demos). Reads are open unless ``SEGMENTFLOW_API_OPEN_READS``
is false; then they need the token as well.
"""

from __future__ import annotations

import hmac
from typing import Any

import orjson
import yaml
from aiohttp import web

from app.api.errors import ApiError
from app.settings import Settings

__all__ = ["authorize", "int_param", "read_body"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="segmentflow"'}


def authorize(request: web.Request, settings: Settings, *, write: bool) -> None:
    if write and settings.api_open_writes:
        return
    if not write and settings.api_open_reads:
        return
    what = "writes" if write else "reads"
    if settings.api_token is None:
        raise ApiError(401, "unauthorized",
                       f"{what} are disabled: no API token is configured (set "
                       "SEGMENTFLOW_API_TOKEN, or SEGMENTFLOW_API_OPEN_WRITES=true for "
                       "local demos)", headers=_CHALLENGE)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized",
                       f"{what} need an 'Authorization: Bearer <token>' header",
                       headers=_CHALLENGE)
    if not hmac.compare_digest(token.strip().encode(), settings.api_token.encode()):
        raise ApiError(403, "forbidden", "the bearer token is not valid")


async def read_body(request: web.Request, settings: Settings) -> tuple[str, Any]:
    """The body as ``("json", value)`` (JSON or YAML) or ``("text", str)``
    (``text/plain``: formula text). Size-limited before and while reading."""
    limit = settings.api_max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "body_too_large",
                       f"request body of {request.content_length} bytes exceeds {limit}")
    raw = await request.read()
    if len(raw) > limit:
        raise ApiError(413, "body_too_large", f"request body exceeds {limit} bytes")
    if not raw.strip():
        raise ApiError(400, "empty_body", "the request needs a body")
    ctype = request.content_type
    if ctype == "text/plain":
        try:
            return "text", raw.decode()
        except UnicodeDecodeError as exc:
            raise ApiError(400, "invalid_text", f"body is not UTF-8: {exc}") from exc
    if ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
        try:
            return "json", yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ApiError(400, "invalid_yaml", f"body is not valid YAML: {exc}") from exc
    if ctype not in ("application/json", "application/octet-stream", ""):
        raise ApiError(415, "unsupported_media_type",
                       f"content type {ctype!r} not supported: send application/json, "
                       "application/yaml or text/plain (formula text)")
    try:
        return "json", orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json",
                       f"body is not valid JSON: {exc.msg} at line {exc.lineno}, "
                       f"column {exc.colno}") from exc


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ApiError(400, "invalid_parameter",
                       f"query parameter {name!r} must be an integer from {low} to {high}")
    return value
