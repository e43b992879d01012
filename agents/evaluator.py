"""The evaluator agent: the only writer of contact state.

It consumes the single ordered log (``evaluator-input``), one stream per
partition, and for each input calls the pure engine
``apply(state, input, catalog, now, accounts)``; then it stores the new state
and publishes the membership changes. Segment definitions and accounts are
replicated into every partition by broadcast, so each partition replays its
own log deterministically.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import faust
import orjson
from faust.types import TableT

from app.clock import PartitionClock
from app.codec import decode_envelope, dumps, model_bytes
from app.faust_app import Tables, Topics
from app.settings import Settings
from engine import Catalog, ContactState, CycleError, Transition, apply
from models.changes import MembershipChange
from models.inputs import (
    AccountDelete,
    AccountUpsert,
    ContactDelete,
    ContactUpsert,
    Interaction,
    StaticEdit,
)
from models.segments import SegmentDefinition, SegmentDelete

__all__ = ["PartitionCatalogs", "register_evaluator"]

log = logging.getLogger(__name__)

CONTACT_INPUTS: dict[str, Any] = {
    "interaction": Interaction,
    "static_edit": StaticEdit,
}


def _contact_input(kind: str, body: dict[str, Any]) -> Any:
    if kind == "contact":
        return ContactDelete(**body) if body.get("op") == "delete" else ContactUpsert(**body)
    return CONTACT_INPUTS[kind].model_validate(body)


def _event_time(inp: Any) -> datetime | None:
    if isinstance(inp, Interaction):
        return inp.occurred_at
    return getattr(inp, "updated_at", None) or getattr(inp, "at", None)


class PartitionCatalogs:
    """The segment catalog of each partition, cached in memory and rebuilt
    from the segments table after a restart or rebalance."""

    def __init__(self, table: TableT) -> None:
        self._table = table
        self._cache: dict[int, Catalog] = {}

    def clear(self) -> None:
        self._cache.clear()

    def get(self, partition: int) -> Catalog:
        catalog = self._cache.get(partition)
        if catalog is None:
            catalog = self._rebuild(partition)
            self._cache[partition] = catalog
        return catalog

    def _rebuild(self, partition: int) -> Catalog:
        prefix = f"{partition}:"
        definitions = [
            SegmentDefinition.model_validate_json(value)
            for key, value in self._table.items()
            if key.startswith(prefix)
        ]
        # Put referenced segments first so references resolve.
        catalog = Catalog.empty()
        pending = definitions
        while pending:
            progressed, rest = False, []
            for definition in pending:
                try:
                    catalog = catalog.put(definition)
                    progressed = True
                except (CycleError, ValueError):
                    rest.append(definition)
            if not progressed:
                break
            pending = rest
        return catalog

    def put(self, partition: int, definition: SegmentDefinition) -> Catalog:
        catalog = self.get(partition).put(definition)  # raises on cycles
        self._table[f"{partition}:{definition.id}"] = model_bytes(definition)
        self._cache[partition] = catalog
        return catalog

    def remove(self, partition: int, segment_id: str) -> Catalog:
        catalog = self.get(partition).remove(segment_id)
        self._table.pop(f"{partition}:{segment_id}", None)
        self._cache[partition] = catalog
        return catalog


class PartitionAccounts(Mapping[str, Mapping[str, Any]]):
    """Read-only view of one partition's replicated accounts for the engine."""

    def __init__(self, table: TableT, partition: int) -> None:
        self._table, self._prefix = table, f"{partition}:"

    def __getitem__(self, account_id: str) -> Mapping[str, Any]:
        raw = self._table.get(self._prefix + account_id)
        if raw is None:
            raise KeyError(account_id)
        return orjson.loads(raw)

    def __iter__(self) -> Iterator[str]:
        return (k[len(self._prefix):] for k in self._table if k.startswith(self._prefix))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class EvaluatorHandle:
    """What the web views may read of the evaluator (never write)."""

    def __init__(self, app: faust.App, catalogs: PartitionCatalogs) -> None:
        self._app, self._catalogs = app, catalogs

    def segment_versions(self, segment_id: str) -> dict[int, int]:
        """Version of ``segment_id`` applied by each partition this worker
        holds (0 when the partition has not seen it)."""
        partitions = {tp.partition for tp in self._app.consumer.assignment()
                      if tp.topic.endswith(".evaluator-input")}
        versions = {}
        for partition in partitions:
            definition = self._catalogs.get(partition).get(segment_id)
            versions[partition] = definition.version if definition is not None else 0
        return versions


def register_evaluator(
    app: faust.App, topics: Topics, tables: Tables, settings: Settings
) -> EvaluatorHandle:
    catalogs = PartitionCatalogs(tables.segments)
    clock = PartitionClock(settings.clock)

    @app.on_partitions_revoked.connect
    async def _forget_catalogs(*_: Any, **__: Any) -> None:  # pragma: no cover - glue
        catalogs.clear()

    async def publish(changes: list[MembershipChange]) -> None:
        for change in changes:
            await topics.membership_changes.send(
                key=change.contact_id.encode(), value=model_bytes(change)
            )
            snapshot_key = f"{change.segment_id}/{change.contact_id}".encode()
            if change.change == "joined":
                snapshot = dumps({
                    "segment_id": change.segment_id,
                    "contact_id": change.contact_id,
                    "member": True,
                    "since": change.at.isoformat(),
                    "segment_version": change.segment_version,
                    "sequence": change.sequence,
                })
                await topics.memberships.send(key=snapshot_key, value=snapshot)
            else:
                # Tombstone: compaction forgets former members.
                await topics.memberships.send(key=snapshot_key, value=None)

    async def refuse(partition: int, message: Any, raw: bytes, reason: str) -> None:
        from agents.ingest import send_dead_letter

        if partition == 0:  # broadcast commands: report once, not once per partition
            await send_dead_letter(topics, settings, message, raw, reason)

    async def evaluate(stream: faust.StreamT) -> None:
        async for event in stream.events():
            message = event.message
            partition = message.partition
            kind, body = decode_envelope(event.value)
            if kind == "segment":
                definition = SegmentDefinition.model_validate(body)
                try:
                    catalogs.put(partition, definition)
                except (CycleError, ValueError) as exc:
                    await refuse(partition, message, event.value,
                                 f"segment {definition.id!r} refused: {exc}")
                continue
            if kind == "segment_delete":
                catalogs.remove(partition, SegmentDelete.model_validate(body).segment_id)
                continue
            if kind == "account":
                key = f"{partition}:{body['account_id']}"
                if body.get("op") == "delete":
                    AccountDelete.model_validate(body)
                    tables.accounts.pop(key, None)
                else:
                    upsert = AccountUpsert.model_validate(body)
                    tables.accounts[key] = dumps(upsert.attributes)
                continue
            inp = _contact_input(kind, body)
            now = clock.now(partition, _event_time(inp))
            contact_id = inp.contact_id
            raw_state = tables.contacts.get(contact_id)
            state = ContactState.from_bytes(raw_state) if raw_state is not None else None
            transition: Transition = apply(
                state,
                inp,
                catalogs.get(partition),
                now,
                PartitionAccounts(tables.accounts, partition),
            )
            if transition.state is None:
                tables.contacts.pop(contact_id, None)
            else:
                tables.contacts[contact_id] = transition.state.to_bytes()
            await publish(transition.changes)

    app.agent(topics.evaluator_input, name="evaluator")(evaluate)
    return EvaluatorHandle(app, catalogs)
