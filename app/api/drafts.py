"""A draft segment from a request body (JSON/YAML definition or formula
text), validated off the event loop: what preview and backtest evaluate."""

from __future__ import annotations

from typing import Any

from faust.web import Request

from app.api.context import ApiContext
from app.api.errors import ApiError
from app.api.guard import read_body
from app.api.offload import Refusal, validate_definition

__all__ = ["read_draft"]


async def read_draft(ctx: ApiContext, request: Request, slot: Any, default_id: str) -> Any:
    """The body as a ``SegmentDefinition`` (id ``default_id`` unless given;
    no version); 422 when invalid, 503 while no partition is held."""
    kind, body = await read_body(request, ctx.settings, ctx.work, slot)
    if kind == "text":
        body = {"formula": body}
    if not isinstance(body, dict):
        raise ApiError(422, "invalid", "a draft must be a JSON object or formula text")
    values = {"id": default_id, **body}
    values.setdefault("name", values["id"])
    values.pop("version", None)
    draft = await ctx.work.run(slot, validate_definition, values, "draft")
    if isinstance(draft, Refusal):
        raise draft.error()
    if ctx.reads.catalog() is None:
        raise ApiError(503, "not_ready", "this worker holds no partition yet; retry")
    return draft
