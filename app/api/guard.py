"""Request guards: bearer-token authorization, ids in paths, and bounded,
parsed bodies.

Tokens: ``SEGMENTFLOW_API_TOKEN`` (write/admin: writes and reads) and
``SEGMENTFLOW_API_READ_TOKEN`` (reads only), compared in constant time,
never logged or echoed. Writes need the write token; with none configured
they are refused (401) unless ``SEGMENTFLOW_API_OPEN_WRITES`` is true (local
demos). Reads (segments, members, contacts, explain, preview) need either
token as soon as one is configured; with no token at all they are open
(local demos), and ``SEGMENTFLOW_API_OPEN_READS=true`` opens them
explicitly. ``/health``, ``/ready``, ``/metrics``, ``/openapi.json`` and the
AsyncAPI document (``/asyncapi.json``, ``/asyncapi.yaml``) are always open.
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from app.api.errors import ApiError
from app.api.limits import clip
from app.api.offload import HeavyWork, Refusal, decode_body
from app.settings import Settings, secret_value
from models.ids import ID_MAX_LENGTH, is_valid_id

__all__ = ["authorize", "check_id", "int_param", "read_body"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="segmentflow"'}


def _matches(given: bytes, secret: str | None) -> bool:
    return secret is not None and hmac.compare_digest(given, secret.encode())


def authorize(request: web.Request, settings: Settings, *, write: bool) -> None:
    write_token = secret_value(settings.api_token)
    read_token = secret_value(settings.api_read_token)
    if write and settings.api_open_writes:
        return
    if not write and (settings.api_open_reads or (write_token is None and read_token is None)):
        return
    what = "writes" if write else "reads"
    if write and write_token is None:
        raise ApiError(401, "unauthorized",
                       f"{what} are disabled: no API token is configured (set "
                       "SEGMENTFLOW_API_TOKEN, or SEGMENTFLOW_API_OPEN_WRITES=true for "
                       "local demos)", headers=_CHALLENGE)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized",
                       f"{what} need an 'Authorization: Bearer <token>' header",
                       headers=_CHALLENGE)
    given = token.strip().encode()
    # Both comparisons always run: the time taken does not tell which matched.
    is_writer, is_reader = _matches(given, write_token), _matches(given, read_token)
    if is_writer or (is_reader and not write):
        return
    if is_reader:
        raise ApiError(403, "forbidden", "the bearer token allows reads only")
    raise ApiError(403, "forbidden", "the bearer token is not valid")


def check_id(value: str, what: str = "segment id") -> str:
    """422 for an id in a path that no definition or input could carry."""
    if not is_valid_id(value):
        raise ApiError(422, "invalid_id",
                       f"{what} {clip(value)!r} is not a valid id: a letter or digit, then "
                       f"letters, digits and _ . : @ + - (at most {ID_MAX_LENGTH})",
                       [{"loc": what.replace(" ", "_"), "message": "not a valid id",
                         "type": "invalid_id"}])
    return value


async def read_body(request: web.Request, settings: Settings, work: HeavyWork, slot: Any
                    ) -> tuple[str, Any]:
    """The body as ``("json", value)`` (JSON or YAML) or ``("text", str)``
    (``text/plain``: formula text). Size-limited before and while reading;
    decoded and structure-checked (depth, element count, no YAML aliases)
    in a worker process."""
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
        result = decode_body(raw, ctype)  # a decode: cheap
    else:
        result = await work.run(slot, decode_body, raw, ctype)
    if isinstance(result, Refusal):
        raise result.error()
    return result


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
