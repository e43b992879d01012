"""One JSON error format for every API failure, and JSON responses.

``{"error": {"code": "...", "message": "...", "details": [...]}}`` — ``code``
is stable (for programs), ``message`` is for people and names the problem
(and, for formulas, its line and column), ``details`` lists per-field
problems (``loc`` is a dotted path into the request body).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

__all__ = [
    "ApiError",
    "error_body",
    "json_errors_middleware",
    "json_response",
    "validation_error",
]

log = logging.getLogger(__name__)

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "body_too_large",
          415: "unsupported_media_type", 422: "invalid", 503: "unavailable"}

# Messages never echo unbounded input: longer ones are cut (ids and values
# in them are already clipped to ~80 characters where they are formatted).
_MAX_MESSAGE = 600


def _cut(text: str, limit: int = _MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, _cut(message)
        self.details = [{**d, "message": _cut(str(d.get("message", "")), 300)}
                        for d in details or []]
        self.headers = headers

    def response(self) -> web.Response:
        return json_response(error_body(self.code, self.message, self.details),
                             self.status, self.headers)


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None
               ) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


def json_response(payload: Any, status: int = 200,
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status,
                        content_type="application/json", headers=headers)


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        part = part if isinstance(part, int) else _cut(str(part), 80)
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validation_error(exc: ValidationError, what: str = "segment definition") -> ApiError:
    """422 naming each problem; a formula's message carries line and column."""
    details = [{"loc": _loc(e["loc"]), "message": e["msg"].removeprefix("Value error, "),
                "type": e["type"]}
               for e in exc.errors(include_url=False, include_input=False)[:20]]
    first = details[0] if details else {"loc": "", "message": str(exc)}
    where = f" at {first['loc']}" if first["loc"] else ""
    return ApiError(422, "invalid", f"invalid {what}{where}: {first['message']}", details)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as the JSON error format: ours, aiohttp's (404
    unknown path, 405, 413 body too large) and unexpected exceptions (500)."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _CODES.get(exc.status, "error")
        message = exc.reason
        if exc.status == 404:
            message = f"no such resource: {request.method} {request.path}"
        elif exc.status == 405:
            message = f"method {request.method} not allowed on {request.path}"
        elif exc.status == 413:
            message = "request body too large"
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return json_response(error_body(code, message), exc.status, headers)
    except RecursionError:
        # Whatever recursed (a deep body or tree), it is the request's shape.
        return json_response(error_body(
            "too_deep", "the request nests too deeply to be handled"), 422)
    except Exception:
        log.exception("API request failed: %s %s", request.method, request.path)
        return json_response(
            error_body("internal", "internal error (see the worker log)"), 500)
