"""Small factories for tests and benchmarks (no test framework imported)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from itertools import count
from typing import Any

from engine.apply import Input, apply
from engine.catalog import Catalog
from engine.commands import Transition
from engine.state import ContactState
from models.changes import MembershipChange
from models.conditions import Condition
from models.inputs import ContactUpsert, Interaction
from models.segments import SegmentDefinition

__all__ = ["Harness", "catalog_of", "interaction", "seg", "upsert", "utc"]

_ids = count(1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc,arg-type]


def seg(
    sid: str, condition: Condition | None = None, *, raw: bool = False, **kw: Any
) -> SegmentDefinition:
    """A live definition; ``raw`` skips model validation (to test what the
    engine does with trees the API would already refuse)."""
    kw.setdefault("status", "live")
    if raw:
        return SegmentDefinition.model_construct(id=sid, name=sid, condition=condition, **kw)
    return SegmentDefinition(id=sid, name=sid, condition=condition, **kw)


def catalog_of(*defs: SegmentDefinition, **kw: Any) -> Catalog:
    cat = Catalog.empty(**kw)
    for d in defs:
        cat = cat.put(d)
    return cat


def upsert(cid: str = "c1", mode: str = "merge", **attributes: Any) -> ContactUpsert:
    return ContactUpsert(contact_id=cid, attributes=attributes, mode=mode)  # type: ignore[arg-type]


def interaction(
    type_: str, at: datetime, cid: str = "c1", event_id: str | None = None, **props: Any
) -> Interaction:
    return Interaction(
        event_id=event_id or f"e{next(_ids)}",
        contact_id=cid,
        type=type_,  # type: ignore[arg-type]
        occurred_at=at,
        properties=props,
    )


class Harness:
    """One contact driven through apply(), keeping every change."""

    def __init__(self, catalog: Catalog, accounts: Mapping[str, Mapping[str, Any]] | None = None):
        self.catalog = catalog
        self.accounts: dict[str, Mapping[str, Any]] = dict(accounts or {})
        self.state: ContactState | None = None
        self.changes: list[MembershipChange] = []
        self.last: Transition | None = None

    def __call__(self, inp: Input, now: datetime) -> list[MembershipChange]:
        self.last = apply(self.state, inp, self.catalog, now, self.accounts)
        self.state = self.last.state
        self.changes.extend(self.last.changes)
        return self.last.changes

    def members(self) -> set[str]:
        return set(self.state.memberships()) if self.state is not None else set()

    def joined(self, changes: Sequence[MembershipChange]) -> set[str]:
        return {c.segment_id for c in changes if c.change == "joined"}

    def left(self, changes: Sequence[MembershipChange]) -> set[str]:
        return {c.segment_id for c in changes if c.change == "left"}
