"""Wire formats: JSON (orjson) for every topic segmentflow writes.

The evaluator's input topic carries envelopes ``{"kind": K, "body": {...}}``
so one ordered log can hold contact inputs and control commands side by side.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel

__all__ = [
    "decode_envelope", "dumps", "encode_envelope", "envelope_around", "input_payload",
    "model_bytes",
]


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def model_bytes(model: BaseModel) -> bytes:
    """Compact JSON of a model, defaults included, for downstream consumers."""
    return model.__pydantic_serializer__.to_json(model)


def input_payload(model: BaseModel) -> dict[str, Any]:
    """An input as JSON data, fields the sender did not set left out:
    "absent" and "null" differ in inputs (an absent account_id keeps the
    contact's account, null clears it). The ``op`` discriminator is always
    kept, or a delete would read back as an upsert."""
    payload = model.model_dump(mode="json", exclude_unset=True)
    op = getattr(model, "op", None)
    if op is not None:
        payload["op"] = op
    return payload


def encode_envelope(kind: str, body: BaseModel | dict[str, Any]) -> bytes:
    payload = input_payload(body) if isinstance(body, BaseModel) else body
    return orjson.dumps({"kind": kind, "body": payload})


def envelope_around(kind: str, body_json: bytes) -> bytes:
    """The envelope of an already validated JSON document, without decoding
    and re-encoding it (ingest's hot path)."""
    return b'{"kind":"' + kind.encode() + b'","body":' + body_json + b"}"


def decode_envelope(raw: bytes) -> tuple[str, dict[str, Any]]:
    envelope = orjson.loads(raw)
    return envelope["kind"], envelope["body"]
