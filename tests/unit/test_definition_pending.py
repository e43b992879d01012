"""The API checks a definition's references against every definition it
accepted, including those the evaluators have not applied yet (issue #14),
and serialises definition writes: two segments referencing each other,
written quickly one after the other or at the same instant, get one 202 and
one 409 at once, instead of two 202 and a refusal in the dead letters."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.api.errors import ApiError
from app.api.writes import DefinitionWriter
from engine import Catalog, Limits
from models.segments import SegmentDefinition


def seg(segment_id: str, formula: str, version: int = 1) -> SegmentDefinition:
    return SegmentDefinition(id=segment_id, name=segment_id, kind="compound", status="live",
                             formula=formula, version=version)


class Reads:
    """What the writer reads of the evaluators: applied definitions and refusals."""

    def __init__(self) -> None:
        self.applied: dict[str, SegmentDefinition] = {}
        self.refused: dict[str, dict[str, Any]] = {}

    def definitions(self) -> dict[str, SegmentDefinition]:
        return dict(self.applied)

    def catalog(self) -> Catalog:
        catalog = Catalog.empty(Limits())
        for definition in self.applied.values():
            catalog = catalog.put(definition)
        return catalog

    def refusal(self, segment_id: str) -> dict[str, Any] | None:
        return self.refused.get(segment_id)


class Topic:
    """The segment-definitions topic: records what was produced; ``gate``
    holds every broker ack until it is set."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()  # a send is held at the gate

    async def send(self, *, key: bytes, value: bytes) -> Any:
        self.sent.append((key, value))
        self.waiting.set()
        await self.gate.wait()
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


@pytest.fixture
def writer() -> DefinitionWriter:
    topics: Any = type("Topics", (), {"segment_definitions": Topic()})()
    return DefinitionWriter(Reads(), topics, work=None)  # type: ignore[arg-type]


def reads(writer: DefinitionWriter) -> Reads:
    return writer._reads  # type: ignore[return-value]


async def test_a_cycle_with_a_definition_accepted_but_not_applied_is_a_409(
        writer: DefinitionWriter) -> None:
    await writer.put(seg("a", 'in segment "b"'))  # b does not exist yet: fine
    assert writer.pending() == {"a": seg("a", 'in segment "b"')}
    with pytest.raises(ApiError) as refused:
        await writer.put(seg("b", 'in segment "a"'))
    assert refused.value.status == 409 and refused.value.code == "reference_cycle"
    assert refused.value.message == (
        "segment refused: segment reference cycle: b -> a -> b "
        "(a: accepted, not yet applied)")
    assert len(writer._topics.segment_definitions.sent) == 1  # b was not produced

    # Once applied the check is the same (a is then in the catalog).
    reads(writer).applied["a"] = seg("a", 'in segment "b"')
    assert writer.pending() == {}
    with pytest.raises(ApiError) as again:
        await writer.put(seg("b", 'in segment "a"'))
    assert again.value.status == 409
    assert again.value.message == "segment refused: segment reference cycle: b -> a -> b"


async def test_two_writes_at_the_same_instant_are_serialised(writer: DefinitionWriter) -> None:
    """Both checks ran before either was produced: both passed (the bug)."""
    topic = writer._topics.segment_definitions
    topic.gate.clear()  # the broker is slow to ack
    first = asyncio.create_task(writer.put(seg("a", 'in segment "b"')))
    second = asyncio.create_task(writer.put(seg("b", 'in segment "a"')))
    # The first write is held at the broker; the second task ran before this
    # one woke (ready tasks run in order) and reached its first suspension.
    await topic.waiting.wait()
    topic.gate.set()
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert results[0] == seg("a", 'in segment "b"')
    assert isinstance(results[1], ApiError) and results[1].status == 409
    assert [key for key, _ in topic.sent] == [b"a"]


async def test_refused_and_deleted_definitions_are_not_pending(writer: DefinitionWriter) -> None:
    # The evaluators refused a's accepted version 2 (e.g. written through
    # another worker as well): version 1 stays in force, 2 is not pending.
    reads(writer).applied["a"] = seg("a", "age > 1")
    await writer.put(seg("a", 'in segment "b"', version=2))
    reads(writer).refused["a"] = {"version": 2, "reason": "segment reference cycle: a -> b -> a"}
    assert writer.pending() == {}
    assert writer.current("a") == seg("a", "age > 1")
    await writer.put(seg("b", 'in segment "a"'))  # no cycle with what is in force
    # The next version of a counts past the refused one.
    assert writer._next_version("a") == 3

    # A delete accepted but not applied: a reference to the deleted segment
    # is no cycle (an unknown segment reads as "not a member").
    reads(writer).applied["b"] = seg("b", 'in segment "a"')
    await writer.delete("b")
    assert writer.pending() == {"b": None}
    await writer.put(seg("a", 'in segment "b"', version=3))
