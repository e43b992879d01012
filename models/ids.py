"""Identifiers: one pattern for every id that enters segmentflow.

Segment, contact, account, event and event-type ids become Kafka keys,
RocksDB keys, URL path segments, the ``"segment/contact"`` key of the
memberships topic and text in logs and the console. One pattern keeps all
of those unambiguous: a letter or digit first, then letters, digits and
``_ . : @ + -`` (so e-mail addresses, UUIDs, CRM ids and slugs fit), at most
200 characters. No ``/``, whitespace, control characters, quotes or ``<>``.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

__all__ = ["ID_MAX_LENGTH", "ID_PATTERN", "Id", "is_valid_id"]

ID_MAX_LENGTH = 200
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@+\-]{0,199}$"
_ID_RE = re.compile(ID_PATTERN)

Id = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]


def is_valid_id(value: object) -> bool:
    """True when ``value`` is a string that matches ``ID_PATTERN``."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None
