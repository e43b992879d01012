"""Dead-letter records: bad input kept whole (or as a preview) with a reason
a person understands, so nothing is lost and nothing stops the worker."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

__all__ = ["dead_letter_record", "describe_error"]


def describe_error(exc: Exception) -> str:
    """One line per problem, naming where in the input it is."""
    if isinstance(exc, ValidationError):
        problems = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(part) for part in err["loc"]) or "(document)"
            problems.append(f"{where}: {err['msg']}")
        return "invalid input: " + "; ".join(problems)
    return f"{type(exc).__name__}: {exc}"


def dead_letter_record(
    *,
    source_topic: str,
    partition: int,
    offset: int,
    raw: bytes | None,
    reason: str,
    max_bytes: int,
) -> dict[str, Any]:
    raw = raw or b""
    record: dict[str, Any] = {
        "source_topic": source_topic,
        "partition": partition,
        "offset": offset,
        "reason": reason,
        "size": len(raw),
        "at": datetime.now(UTC).isoformat(),
        # Readable preview for people; base64 of the raw bytes for replays.
        "preview": raw[:512].decode("utf-8", errors="replace"),
    }
    if len(raw) <= max_bytes:
        record["raw_base64"] = base64.b64encode(raw).decode("ascii")
    else:
        record["truncated"] = True
    return record
