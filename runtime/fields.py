"""The field catalogue of one partition: which contact attributes, account
attributes and event properties have been seen, with their JSON types and
how many inputs carried them.

For people writing formulas (``segmentflow fields``, ``GET /fields``) and
for the warning a formula naming a field never seen gets (a typo such as
``citty``). Kept in memory by the partition's processor and stored in
``META`` (one record, only for batches that changed it) so it survives
restarts and moves with the partition. Nested objects are listed by dotted
path (what a formula writes), down to :data:`MAX_DEPTH`; at most
:data:`MAX_FIELDS` fields per partition (later new ones are not listed, and
the catalogue says it is truncated).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from difflib import get_close_matches
from typing import Any

import orjson

from engine.deps import Deps
from runtime.keys import Keyspace
from runtime.transaction import PartitionTransaction

__all__ = [
    "ACCOUNT", "CONTACT", "FieldCatalogue", "event_scope", "field_warnings", "merge_catalogues",
]

CONTACT = "contact"
ACCOUNT = "account"
MAX_FIELDS = 5000
MAX_DEPTH = 3
_KEY = b"fields"


def event_scope(event_type: str) -> str:
    return f"event:{event_type}"


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object"


class FieldCatalogue:
    """scope -> field path -> JSON type -> count of inputs."""

    def __init__(self, fields: dict[str, dict[str, dict[str, int]]] | None = None,
                 truncated: bool = False) -> None:
        self.fields = fields if fields is not None else {}
        self.truncated = truncated
        self._size = sum(len(f) for f in self.fields.values())
        self.dirty = False

    @classmethod
    def load(cls, txn: PartitionTransaction) -> FieldCatalogue:
        raw = txn.get(Keyspace.META, _KEY)
        if raw is None:
            return cls()
        data = orjson.loads(raw)
        return cls(data["fields"], data.get("truncated", False))

    def store(self, txn: PartitionTransaction) -> None:
        """Write it if this batch changed it."""
        if self.dirty:
            txn.put(Keyspace.META, _KEY,
                    orjson.dumps({"fields": self.fields, "truncated": self.truncated}))
            self.dirty = False

    def observe(self, scope: str, values: Mapping[str, Any]) -> None:
        if not values:
            return
        found = self.fields.get(scope)
        if found is None:
            found = self.fields[scope] = {}
        for path, kind in _paths(values, "", 1):
            types = found.get(path)
            if types is None:
                if self._size >= MAX_FIELDS:
                    self.truncated = True
                    continue
                types = found[path] = {}
                self._size += 1
            types[kind] = types.get(kind, 0) + 1
        self.dirty = True

    def observe_event(self, event_type: str, properties: Mapping[str, Any]) -> None:
        scope = event_scope(event_type)
        if not properties:  # the type itself is seen, property-less
            self.fields.setdefault(scope, {})
            self.dirty = True
            return
        self.observe(scope, properties)


def _paths(values: Mapping[str, Any], prefix: str, depth: int) -> Iterable[tuple[str, str]]:
    for name, value in values.items():
        path = prefix + name
        kind = json_type(value)
        if kind == "null":
            continue  # a null removes an attribute: it says nothing of its type
        yield path, kind
        if kind == "object" and depth < MAX_DEPTH:
            yield from _paths(value, path + ".", depth + 1)


def merge_catalogues(catalogues: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Several partitions' catalogues (``{"fields": ..., "truncated": ...}``)
    as one: counts added."""
    fields: dict[str, dict[str, dict[str, int]]] = {}
    truncated = False
    for catalogue in catalogues:
        truncated = truncated or bool(catalogue.get("truncated"))
        for scope, paths in catalogue["fields"].items():
            mine = fields.setdefault(scope, {})
            for path, types in paths.items():
                counts = mine.setdefault(path, {})
                for kind, n in types.items():
                    counts[kind] = counts.get(kind, 0) + n
    return {"fields": fields, "truncated": truncated}


def field_warnings(catalogue: Mapping[str, Any], deps: Deps) -> list[str]:
    """What a formula reads that no input has carried yet (a typo, or data
    not flowing yet): one message per field, with the closest seen names.
    Nothing is said about a scope with nothing seen at all (a new system)."""
    fields: Mapping[str, Mapping[str, Any]] = catalogue.get("fields", {})
    warnings: list[str] = []

    def check(scope: str, names: Iterable[str], what: str) -> None:
        seen = {path.split(".", 1)[0] for path in fields.get(scope, {})}
        if not seen:
            return
        for name in sorted(set(names) - seen):
            close = get_close_matches(name, sorted(seen), n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            warnings.append(f"{what} {name!r} has not been seen on any input yet{hint}")

    check(CONTACT, deps.fields, "contact attribute")
    check(ACCOUNT, deps.account_fields, "account attribute")
    types = {scope[len("event:"):] for scope in fields if scope.startswith("event:")}
    read: dict[str, set[str]] = {}
    for event_type, need in deps.history:
        read.setdefault(event_type, set()).update(need.props)
    for spec in deps.features:
        read.setdefault(spec.event_type, set()).update(spec.props)
    for event_type in sorted(set(deps.event_types) | set(read)):
        if types and event_type not in types:
            close = get_close_matches(event_type, sorted(types), n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            warnings.append(f"no {event_type!r} event has been seen yet{hint}")
        elif event_type in types:
            check(event_scope(event_type), read.get(event_type, ()),
                  f"property of {event_type!r}")
    return warnings
