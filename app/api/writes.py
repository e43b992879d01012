"""API writes: validated, then PRODUCED to the source-of-truth topics.

The segment-definitions topic is the truth; the evaluator applies what
arrives there (in every partition). A write here checks the definition with
the pydantic model and, for references between segments, with an
``engine.Catalog`` built from the applied catalog, every definition this
API accepted that the evaluators have not applied yet (the pending set),
and the new definition; then produces it and returns it as accepted (202):
it is live once the evaluators have applied it (``GET /segments/{id}`` shows
the progress). The check and the produce are serialised (one definition
write at a time on a worker), so two quick writes that reference each other
cannot both pass: the second gets a 409 at once. A definition the
evaluators refuse anyway (written through another worker at the same
instant, or straight to the topic) is shown as refused (agents/refusals.py),
and the version in force stays the previous one.

Versions: each write is the newest version known here (applied by the
evaluator, or produced earlier by this worker's API) plus one.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from agents.event_types import EventTypeFeed
from agents.state_reads import EvaluatorReads
from app.api.budget import WriteBudget
from app.api.errors import ApiError, validation_error
from app.api.limits import MAX_DEFINITION_RECORD_BYTES, clip
from app.api.offload import HeavyWork, Refusal, validate_definition
from app.faust_app import Topics
from engine import CompileError, CycleError
from models.formula.parser import event_type_references
from models.inputs import StaticEdit
from models.segments import SegmentDefinition

__all__ = ["DefinitionWriter"]

# Fields the server owns: a client's values are ignored.
_SERVER_FIELDS = ("version", "created_at", "updated_at")


class DefinitionWriter:
    # Seconds a write naming an unknown event type waits for a just-started
    # worker to read the event-types topic.
    load_wait = 10.0

    def __init__(self, reads: EvaluatorReads, topics: Topics, work: HeavyWork,
                 definition_chars_per_second: int = 16_384,
                 event_types: EventTypeFeed | None = None,
                 accept_undeclared_event_types: bool = False) -> None:
        self._reads, self._topics, self._work = reads, topics, work
        # Formulas may name declared event types only (docs/event-types.md).
        self.event_types = event_types
        self._accept_undeclared = accept_undeclared_event_types
        # segment id -> (version, definition or None once deleted) produced here
        self._produced: dict[str, tuple[int, SegmentDefinition | None]] = {}
        # Definition writes are charged by formula size (app/api/budget.py)
        # so a write flood cannot stall evaluation on any worker.
        self._budget = WriteBudget(definition_chars_per_second)
        # Check + produce of definition writes, one at a time (the pending set).
        self._writing = asyncio.Lock()
        # The last definition checked and what it reads (its compiled deps):
        # the answer's field warnings use them instead of compiling again.
        self.last_checked: tuple[SegmentDefinition, Any] | None = None

    def refusal(self, segment_id: str) -> dict[str, Any] | None:
        """``{"version", "reason"}`` of the segment's newest definition the
        evaluators refused, while no later version is applied; else None."""
        return self._reads.refusal(segment_id)

    def _is_pending(self, segment_id: str, version: int, applied: SegmentDefinition | None,
                    refused: dict[str, Any] | None) -> bool:
        """Produced here at ``version`` and neither applied nor refused yet."""
        if applied is not None and applied.version >= version:
            return False
        return refused is None or refused["version"] < version

    def current(self, segment_id: str) -> SegmentDefinition | None:
        """The definition in force, or a newer one produced here that the
        evaluators have not applied yet (never one they refused)."""
        applied = self._reads.definitions().get(segment_id)
        produced = self._produced.get(segment_id)
        if produced is not None and self._is_pending(
                segment_id, produced[0], applied, self.refusal(segment_id)):
            return produced[1]
        return applied

    def pending(self) -> dict[str, SegmentDefinition | None]:
        """Definitions (None: deletes) accepted here, not yet applied or refused."""
        applied = self._reads.definitions()
        found: dict[str, SegmentDefinition | None] = {}
        for segment_id, (version, definition) in self._produced.items():
            before = applied.get(segment_id)
            if definition is None and before is None:
                continue  # a delete of what is not there (any more)
            if self._is_pending(segment_id, version, before, self.refusal(segment_id)):
                found[segment_id] = definition
        return found

    def _next_version(self, segment_id: str) -> int:
        applied = self._reads.definitions().get(segment_id)
        produced = self._produced.get(segment_id)
        refused = self.refusal(segment_id)
        return max(applied.version if applied else 0, produced[0] if produced else 0,
                   refused["version"] if refused else 0) + 1

    async def build(self, segment_id: str | None, body: Any, *,
                    existing: SegmentDefinition | None, slot: Any) -> SegmentDefinition:
        """The definition a create/update body asks for (not produced):
        validated in a worker process, references checked here."""
        result = await self._work.run(slot, validate_definition,
                                      self.values(segment_id, body, existing=existing),
                                      "segment definition")
        if isinstance(result, Refusal):
            raise result.error()
        return result

    def values(self, segment_id: str | None, body: Any, *, existing: SegmentDefinition | None
               ) -> dict[str, Any]:
        """The fields to validate: the body's, plus the server's."""
        if not isinstance(body, dict):
            raise ApiError(422, "invalid", "a segment definition must be a JSON object")
        values = {k: v for k, v in body.items() if k not in _SERVER_FIELDS}
        if segment_id is not None and values.setdefault("id", segment_id) != segment_id:
            raise ApiError(422, "invalid",
                           f"body id {clip(values['id'])!r} differs from the URL's "
                           f"{clip(segment_id)!r}",
                           [{"loc": "id", "message": "must match the URL",
                             "type": "id_mismatch"}])
        if existing is not None:
            # Unspecified status keeps the current one (activate/stop change it).
            values.setdefault("status", existing.status)
            values.setdefault("name", existing.name)
        elif "id" in values:
            values.setdefault("name", values["id"])
        now = datetime.now(UTC)
        target = values.get("id")
        values["version"] = self._next_version(target) if isinstance(target, str) else 1
        values["created_at"] = (existing.created_at if existing and existing.created_at
                                else now).isoformat()
        values["updated_at"] = now.isoformat()
        return values

    def check_references(self, definition: SegmentDefinition) -> None:
        """Refuse ``definition`` if it cannot join the applied catalog plus
        the pending set: what the evaluators will hold once they applied
        everything accepted so far."""
        catalog = self._reads.catalog()
        if catalog is None:
            raise ApiError(503, "not_ready", "this worker holds no partition yet; retry")
        pending = self.pending()
        for segment_id, accepted in pending.items():
            if segment_id == definition.id:
                continue
            try:
                catalog = (catalog.remove(segment_id) if accepted is None
                           else catalog.put(accepted))
            except (ValueError, RecursionError):
                continue  # the evaluators will refuse it (and show why)
        self.check_event_types(definition)
        try:
            compiled = catalog.put(definition).compiled(definition.id)
            self.last_checked = (definition, compiled.deps if compiled is not None else None)
        except CycleError as exc:
            waiting = sorted({s for s in exc.cycle if s in pending and s != definition.id})
            note = (f" ({', '.join(waiting)}: accepted, not yet applied)" if waiting else "")
            raise ApiError(409, "reference_cycle", f"segment refused: {exc}{note}") from exc
        except (CompileError, ValueError) as exc:
            raise ApiError(422, "invalid", f"segment refused: {exc}") from exc
        except RecursionError as exc:
            raise ApiError(422, "invalid", "segment refused: it nests too deeply") from exc

    def undeclared_event_types(self, definition: SegmentDefinition
                               ) -> list[tuple[str, int, int]]:
        """``(type, line, column)`` of each event type the formula names
        that is not declared (or retired), in order; only retired ones when
        undeclared types are accepted."""
        if self.event_types is None or not definition.formula:
            return []
        registry = self.event_types.registry
        refs = event_type_references(definition.formula)
        if self._accept_undeclared:  # only retired types are refused at ingest then
            return [ref for ref in refs
                    if (found := registry.get(ref[0])) is not None and found.retired]
        return [ref for ref in refs if not registry.accepts(ref[0])]

    def check_event_types(self, definition: SegmentDefinition) -> None:
        """422 ``undeclared_event_type`` at the line and column of each event
        type the formula names that is not declared: ingest dead-letters
        such interactions, so the condition could never match."""
        missing = self.undeclared_event_types(definition)
        if not missing or self.event_types is None:
            return
        if not self.event_types.loaded:  # a worker just started: it may not know them yet
            raise ApiError(503, "not_ready", "this worker has not read the event types yet; "
                           "retry", headers={"Retry-After": "1"})
        registry = self.event_types.registry
        details = []
        for name, line, column in missing:
            problem = registry.undeclared_reason(name, self.event_types.topic or None)
            details.append({"loc": "formula", "type": "undeclared_event_type",
                            "message": f"line {line}, column {column}: {problem}"})
        raise ApiError(422, "undeclared_event_type",
                       f"segment refused: formula {details[0]['message']}", details)

    async def put(self, definition: SegmentDefinition) -> SegmentDefinition:
        """Check the references (against the pending set too) and produce,
        one definition write at a time."""
        async with self._writing:
            if self.undeclared_event_types(definition) and self.event_types is not None:
                await self.event_types.wait_loaded(self.load_wait)  # a worker just started
                await self.event_types.catch_up()  # a declaration just written elsewhere
            self.check_references(definition)
            return await self._put(definition)

    async def _put(self, definition: SegmentDefinition) -> SegmentDefinition:
        value = orjson.dumps(definition.model_dump(mode="json", exclude_none=True))
        wait = self._budget.take(definition.formula)
        if wait > 0:
            raise ApiError(503, "busy",
                           f"definition writes here are limited to {self._budget.rate} formula "
                           "characters per second (SEGMENTFLOW_API_DEFINITION_CHARS_PER_SECOND); "
                           "retry", headers={"Retry-After": str(max(1, math.ceil(wait)))})
        if len(value) > MAX_DEFINITION_RECORD_BYTES:
            # The broker refuses records over its limit (1 MB by default).
            raise ApiError(413, "definition_too_large",
                           f"the definition is {len(value)} bytes as stored; at most "
                           f"{MAX_DEFINITION_RECORD_BYTES} are accepted")
        await self._produce(self._topics.segment_definitions, definition.id, value)
        self._produced[definition.id] = (definition.version, definition)
        return definition

    async def set_status(self, segment_id: str, status: str) -> SegmentDefinition:
        existing = self.current(segment_id)
        if existing is None:
            raise ApiError(404, "segment_not_found", f'no segment "{clip(segment_id)}"')
        body = existing.model_dump(mode="json", exclude_none=True)
        body["status"] = status
        async with self._work.slot() as slot:
            defn = await self.build(segment_id, body, existing=existing, slot=slot)
        return await self.put(defn)

    async def delete(self, segment_id: str) -> None:
        async with self._writing:
            if self.current(segment_id) is None and self.refusal(segment_id) is None:
                raise ApiError(404, "segment_not_found", f'no segment "{clip(segment_id)}"')
            version = self._next_version(segment_id)
            value = orjson.dumps({"op": "delete", "segment_id": segment_id})
            await self._produce(self._topics.segment_definitions, segment_id, value)
            self._produced[segment_id] = (version, None)

    async def static_edit(self, segment_id: str, contact_id: str, op: str) -> StaticEdit:
        if self.current(segment_id) is None:
            raise ApiError(404, "segment_not_found", f'no segment "{clip(segment_id)}"')
        try:
            edit = StaticEdit(segment_id=segment_id, contact_id=contact_id, op=op,  # type: ignore[arg-type]
                              at=datetime.now(UTC))
        except ValidationError as exc:
            raise validation_error(exc, "static edit") from exc
        value = orjson.dumps(edit.model_dump(mode="json", exclude_none=True))
        await self._produce(self._topics.static_edits, contact_id, value)
        return edit

    @staticmethod
    async def _produce(topic: Any, key: str, value: bytes) -> None:
        """Send and wait for the broker's ack: a 202 means it is durable."""
        future = await topic.send(key=key.encode(), value=value)
        await future
