"""Dead-letter records: bad input kept whole (or as a preview) with a reason
a person understands, so nothing is lost and nothing stops the worker."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from models.ids import ID_MAX_LENGTH, ID_PATTERN

__all__ = ["dead_letter_record", "describe_error"]


def describe_error(exc: Exception) -> str:
    """One line per problem, naming where in the input it is."""
    if isinstance(exc, ValidationError):
        problems = []
        for err in exc.errors(include_url=False):
            where = ".".join(_short(str(part)) for part in err["loc"]) or "(document)"
            problems.append(f"{where}: {_message(err)}")
        return "invalid input: " + "; ".join(problems)
    return f"{type(exc).__name__}: {exc}"


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _message(err: Any) -> str:
    """pydantic's message, except for ids, whose regex says little to people."""
    ctx = err.get("ctx") or {}
    if err["type"] == "string_pattern_mismatch" and ctx.get("pattern") == ID_PATTERN:
        return (f"{_short(repr(err['input']), 60)} is not a valid id (a letter or digit, then "
                f"letters, digits and _ . : @ + -; at most {ID_MAX_LENGTH} characters)")
    return str(err["msg"])


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
