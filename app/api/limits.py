"""Limits on what a request may ask of a worker, checked before the
expensive work: the structure of a decoded body (nesting depth, element
count, checked iteratively), YAML without anchors or aliases (the only YAML
loader of the API and the CLI), and bounded echoes of input in messages.

Everything here is pure (no aiohttp, no event loop): it runs in the API's
worker processes (``app.api.offload``) and in the CLI.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = [
    "MAX_BODY_DEPTH",
    "MAX_BODY_ELEMENTS",
    "MAX_DEFINITION_RECORD_BYTES",
    "StructureError",
    "check_structure",
    "clip",
    "load_yaml",
]

# A condition of MAX_NESTING (32) levels is about 2 JSON levels per level
# (an and/or node, its args list); 100 leaves room for the definition around.
MAX_BODY_DEPTH = 100
# Values, lists and objects in one body (include lists, long in-lists…).
MAX_BODY_ELEMENTS = 50_000
# A definition record produced to the definitions topic stays well below the
# broker's default 1 MB message limit (the body limit keeps it near 300 KB).
MAX_DEFINITION_RECORD_BYTES = 512 * 1024

_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class StructureError(ValueError):
    """A body refused for its shape (too deep, too many elements, YAML
    anchors/aliases) before it is validated."""


def clip(value: object, limit: int = 80) -> str:
    """``repr``-like text of ``value`` for a message, at most ``limit``
    characters (with ``…`` when cut): messages never echo unbounded input."""
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= limit else text[:limit - 1] + "…"


def check_structure(value: Any, max_depth: int = MAX_BODY_DEPTH,
                    max_elements: int = MAX_BODY_ELEMENTS) -> None:
    """Raise ``StructureError`` when a decoded JSON/YAML value nests deeper
    than ``max_depth`` or holds more than ``max_elements`` values. Iterative:
    any depth is measured without recursion."""
    count = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > max_elements:
            raise StructureError(f"the body holds more than {max_elements} values")
        if depth > max_depth:
            raise StructureError(f"the body nests deeper than {max_depth} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
            count += len(item)  # the keys
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def _check_events(text: str | bytes, max_depth: int, max_elements: int) -> None:
    depth = count = 0
    for event in yaml.parse(text, Loader=_SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise StructureError("YAML anchors and aliases (&name, *name) are not accepted")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > max_depth:
                raise StructureError(f"the body nests deeper than {max_depth} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        if isinstance(event, yaml.NodeEvent):
            count += 1
            if count > max_elements:
                raise StructureError(f"the body holds more than {max_elements} values")


def load_yaml(text: str | bytes, *, all_documents: bool = False,
              max_depth: int = MAX_BODY_DEPTH, max_elements: int = MAX_BODY_ELEMENTS) -> Any:
    """Safe YAML without anchors and aliases (an alias "bomb" expands
    exponentially), limited in depth and size: the event stream is checked
    first, then the documents are built. ``all_documents``: a list of every
    document (``---``-separated). Raises ``StructureError`` or
    ``yaml.YAMLError``."""
    _check_events(text, max_depth, max_elements)
    if all_documents:
        return list(yaml.load_all(text, Loader=_SafeLoader))
    return yaml.load(text, Loader=_SafeLoader)  # a safe loader (C or pure Python)
