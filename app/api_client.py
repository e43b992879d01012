"""A small synchronous client of the HTTP API, for the CLI (standard library
only: the CLI must start fast and needs no event loop for one request)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = ["ApiClient", "ApiClientError"]


class ApiClientError(Exception):
    """A refused request (``status`` > 0, with the API's error code and
    message) or an unreachable service (``status`` 0)."""

    def __init__(self, status: int, code: str, message: str,
                 details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or []

    def __str__(self) -> str:
        head = f"HTTP {self.status} {self.code}: " if self.status else ""
        lines = [head + self.message]
        for d in self.details[1:] if len(self.details) > 1 else []:
            lines.append(f"  - {d.get('loc', '')}: {d.get('message', '')}")
        return "\n".join(lines)


class ApiClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0,
                 retries: int = 10) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = retries  # of a 503 answered with Retry-After

    def request(self, method: str, path: str, *, body: Any = None,
                query: dict[str, Any] | None = None, text: str | None = None,
                raw: bool = False) -> Any:
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif text is not None:
            data = text.encode()
            headers["Content-Type"] = "text/plain"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        attempt = 0
        while True:
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as response:
                    payload = response.read()
                break
            except urllib.error.HTTPError as exc:
                # 503 + Retry-After: busy or over the definition write rate;
                # nothing was done, so the request is retried as asked.
                wait = _retry_after(exc)
                if wait is None or attempt >= self.retries:
                    raise _refused(exc) from None
                exc.close()
                attempt += 1
                time.sleep(wait)
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise ApiClientError(0, "unreachable",
                                     f"cannot reach segmentflow at {self.url}: {reason}"
                                     ) from None
        if raw:
            return payload.decode()
        return json.loads(payload) if payload else None

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query)


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    """Seconds to wait before retrying (503 with a Retry-After of at most
    10 s), else None."""
    if exc.code != 503:
        return None
    try:
        wait = float(exc.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return wait if 0 <= wait <= 10 else None


def _refused(exc: urllib.error.HTTPError) -> ApiClientError:
    body = exc.read()
    try:
        error = json.loads(body)["error"]
        return ApiClientError(exc.code, error["code"], error["message"], error.get("details"))
    except (ValueError, KeyError, TypeError):
        return ApiClientError(exc.code, "error", body.decode(errors="replace")[:500] or str(exc))
