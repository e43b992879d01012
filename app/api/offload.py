"""Heavy request work off the evaluator's event loop.

The API shares the worker's event loop with the evaluator (Faust
``web_in_thread=False``). Decoding a body and validating a definition cost
about 15 µs per formula character: on the loop a big request stalled
membership changes and ``/health`` for seconds. Here that work runs in
worker *processes* (threads would share the GIL: measured, two threads
parsing 16 KB formulas cut the loop's socket round trips from ~820/s to
~60/s; two processes left them at ~830/s):

- at most ``api_max_concurrent`` heavy requests at a time; more are answered
  ``503`` with ``Retry-After`` at once, not queued;
- each piece of work has ``api_work_timeout`` seconds, then ``503``; its slot
  stays taken until the process really finished, so timed-out work never
  piles up in the pool;
- a broken pool (a process died) is replaced.

The functions the processes run (``decode_body``, ``validate_definition``)
return plain results or an ``Refusal`` tuple (picklable, unlike
``ApiError``/``ValidationError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, NamedTuple

import orjson
import yaml
from pydantic import ValidationError

from app.api.errors import ApiError, validation_error
from app.api.limits import StructureError, check_structure, clip, load_yaml
from models.segments import SegmentDefinition

__all__ = ["HeavyWork", "Refusal", "decode_body", "validate_definition"]

_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
_JSON_TYPES = ("application/json", "application/octet-stream", "")


class Refusal(NamedTuple):
    status: int
    code: str
    message: str
    details: list[dict[str, Any]]

    def error(self) -> ApiError:
        return ApiError(self.status, self.code, self.message, self.details)


# -- what the worker processes run ------------------------------------------------------


def decode_body(raw: bytes, ctype: str) -> tuple[str, Any] | Refusal:
    """``("json", value)`` or ``("text", str)``, structure-checked."""
    try:
        if ctype == "text/plain":
            try:
                return "text", raw.decode()
            except UnicodeDecodeError as exc:
                return Refusal(400, "invalid_text", f"body is not UTF-8: {exc}", [])
        if ctype in _YAML_TYPES:
            try:
                value = load_yaml(raw)
            except yaml.YAMLError as exc:
                return Refusal(400, "invalid_yaml",
                               f"body is not valid YAML: {clip(str(exc), 300)}", [])
        elif ctype in _JSON_TYPES:
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                return Refusal(400, "invalid_json",
                               f"body is not valid JSON: {exc.msg} at line {exc.lineno}, "
                               f"column {exc.colno}", [])
            check_structure(value)
        else:
            return Refusal(415, "unsupported_media_type",
                           f"content type {clip(ctype)!r} not supported: send "
                           "application/json, application/yaml or text/plain (formula text)",
                           [])
    except StructureError as exc:
        return Refusal(422, "body_too_complex", str(exc), [])
    except RecursionError:
        return Refusal(422, "body_too_complex", "the body nests too deeply", [])
    return "json", value


def validate_definition(values: dict[str, Any], what: str) -> SegmentDefinition | Refusal:
    """``SegmentDefinition.model_validate(values)``, or the 422 to answer."""
    try:
        return SegmentDefinition.model_validate(values)
    except ValidationError as exc:
        err = validation_error(exc, what)
        return Refusal(err.status, err.code, err.message, err.details)
    except RecursionError:
        return Refusal(422, "invalid", f"invalid {what}: the condition nests too deeply", [])


def _warm() -> int:
    return 0


# -- the loop side ------------------------------------------------------------------------


class HeavyWork:
    """Slots for heavy requests and the process pool that does their work."""

    def __init__(self, workers: int, concurrency: int, timeout: float) -> None:
        self.workers, self.concurrency, self.timeout = workers, concurrency, timeout
        self.busy = 0
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: forking a process that holds RocksDB, sockets and threads
            # is unsafe; spawned processes import only what the work needs.
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def warm_up(self) -> None:
        """Start the processes now (a spawn takes a second), not on the
        first request."""
        pool = self._executor()
        for _ in range(self.workers):
            pool.submit(_warm)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[_Slot]:
        """One heavy request: 503 + Retry-After when every slot is taken."""
        if self.busy >= self.concurrency:
            raise ApiError(503, "busy",
                           f"{self.concurrency} heavy requests (definitions, previews) are "
                           "already being worked on here; retry shortly",
                           headers={"Retry-After": "1"})
        self.busy += 1
        slot = _Slot(self)
        try:
            yield slot
        finally:
            slot.close()

    def _release(self) -> None:
        self.busy -= 1

    async def run(self, slot: _Slot, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a worker process within the time budget."""
        try:
            future: Future[Any] = self._executor().submit(fn, *args)
        except BrokenProcessPool:
            self._pool = None
            future = self._executor().submit(fn, *args)
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)),
                                          self.timeout)
        except TimeoutError:
            slot.hold_until(future)
            raise ApiError(503, "timeout",
                           f"the request needed more than {self.timeout} s of work; "
                           "simplify it or retry", headers={"Retry-After": "5"}) from None
        except BrokenProcessPool:
            self._pool = None
            raise ApiError(503, "unavailable", "the request's worker process failed; retry",
                           headers={"Retry-After": "1"}) from None


class _Slot:
    """Released when the request ends, or later, once work that timed out
    has really finished in its process."""

    def __init__(self, owner: HeavyWork) -> None:
        self._owner = owner
        self._pending: Future[Any] | None = None
        self._closed = False
        self.started = time.monotonic()

    def hold_until(self, future: Future[Any]) -> None:
        self._pending = future

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        pending = self._pending
        if pending is None or pending.done():
            self._owner._release()
            return
        loop = asyncio.get_running_loop()
        pending.add_done_callback(
            lambda _: loop.call_soon_threadsafe(self._owner._release))
