"""A small HTTP helper for API integration tests: every JSON response can be
checked against the schema the service's own /openapi.json documents."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import jsonschema

from app.api.openapi import response_schema

TOKEN = "test-token"  # the write (admin) token
AUTH = {"Authorization": f"Bearer {TOKEN}"}
READ_TOKEN = "test-read-token"
READ_AUTH = {"Authorization": f"Bearer {READ_TOKEN}"}


class Api:
    def __init__(self, session: aiohttp.ClientSession, url: str,
                 auth: dict[str, str] | None = None) -> None:
        """``auth``: headers of calls that pass none (e.g. ``READ_AUTH``)."""
        self.session, self.url, self.auth = session, url, auth
        self.doc: dict[str, Any] | None = None
        self.checked: set[tuple[str, str, int]] = set()

    async def load_openapi(self) -> dict[str, Any]:
        async with self.session.get(self.url + "/openapi.json") as response:
            assert response.status == 200
            self.doc = await response.json()
        return self.doc

    async def call(self, method: str, path: str, *, route: str | None = None,
                   expect: int | None = None, **kwargs: Any) -> tuple[int, Any]:
        """``route``: the OpenAPI path template; when given, the JSON body is
        validated against the documented response schema for its status."""
        if self.auth is not None and "headers" not in kwargs:
            kwargs["headers"] = self.auth
        async with self.session.request(method, self.url + path, **kwargs) as response:
            status = response.status
            ctype = response.content_type
            body: Any = await response.json() if ctype == "application/json" else \
                await response.text()
        if expect is not None:
            assert status == expect, (method, path, status, body)
        if status >= 400:
            assert set(body) == {"error"} and {"code", "message", "details"} <= set(
                body["error"]), body
        if route is not None and ctype == "application/json":
            assert self.doc is not None
            jsonschema.validate(body, response_schema(self.doc, route, method.lower(), status))
            self.checked.add((route, method.lower(), status))
        return status, body


async def eventually(probe: Callable[[], Any], check: Callable[[Any], bool],
                     timeout: float = 20.0) -> Any:
    """Poll ``await probe()`` until ``check(result)``; returns the result."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if check(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last result {result!r}")
        await asyncio.sleep(0.1)
