"""Differential test of the runtime: the partition processors, their
transactions, staged (pipelined) batches, crashes and restores, driven
without a broker by ``runtime.driver.Driver``, against ``tests.naive``.

Several contacts over several partitions; random segment catalogs (the
engine's differential strategies), contact upserts and deletes,
interactions (with duplicates), static edits and account changes, cut into
batches of random size with random pipelining depth, interrupted by kill -9
(in-flight batches lost after their changes were sent), clean restarts and
restarts that lose the local stores (restored from the changelog), and new
versions of live segments (backfilled over the partition's contacts in
chunks, between batches, through all of the above), and segments defined
only after data arrived (evaluated over the retained history: they must
answer as if they had been live from the start). At the
end the membership a consumer folds from the change topic (sequence filter)
and the membership in the stored state must both equal a naive recompute
from the full history at each partition's event clock.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine import ContactState
from engine.timeutil import from_us
from models.inputs import Interaction
from models.segments import SegmentDefinition
from runtime.driver import Driver
from runtime.keys import Keyspace, contact_key
from runtime.partitioning import partition_for
from runtime.processor import ProcessorConfig
from tests.naive import NaiveContact, naive_memberships
from tests.unit.test_differential import CATEGORIES, CITIES, TYPES, scenarios

MAX_EXAMPLES = int(os.environ.get("RUNTIME_DIFF_EXAMPLES", "120"))
RUN = {"n": 0, "faults": 0, "changes": 0, "late": 0}
CONTACTS = [f"c{i}" for i in range(6)]
PARTITIONS = 3

OPS = ["upsert", "upsert", "event", "event", "event", "event", "dup", "static", "account",
       "delete", "run", "run", "crash", "restart", "wipe", "redefine", "define"]


def _valid(defs: list[SegmentDefinition]) -> list[dict[str, Any]] | None:
    """The definitions as the API would publish them, if they validate."""
    bodies = []
    for d in defs:
        body = d.model_dump(mode="json", exclude_none=True)
        try:
            SegmentDefinition.model_validate(body)
        except Exception:
            return None
        bodies.append(body)
    return bodies


@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenario=scenarios(), data=st.data(),
       batch_size=st.integers(1, 7), depth=st.integers(0, 3),
       store=st.sampled_from(["memory", "memory", "rocksdb"]))
def _runtime_equals_naive(scenario: Any, data: st.DataObject, batch_size: int, depth: int,
                          store: str) -> None:
    start, defs = scenario
    bodies = _valid(defs)
    assume(bodies is not None)
    assert bodies is not None
    draw = data.draw
    RUN["n"] += 1
    driver = Driver(PARTITIONS, store=store, batch_size=batch_size, depth=depth,  # type: ignore[arg-type]
                    wall=lambda: start,
                    config=ProcessorConfig(partitions=PARTITIONS, clock="event",
                                           backfill_chunk=draw(st.integers(1, 4))))
    try:
        # Some segments exist from the start, the others are defined later.
        late = draw(st.lists(st.sampled_from(range(len(bodies))), unique=True))
        pending = [bodies[i] for i in late]
        for i, body in enumerate(bodies):
            if i not in late:
                driver.send("segment", body)
        naive: dict[str, NaiveContact] = {}
        accounts: dict[str, dict[str, Any]] = {}
        sent: list[dict[str, Any]] = []
        now = start
        for step in range(draw(st.integers(1, 40))):
            op = draw(st.sampled_from(OPS))
            cid = draw(st.sampled_from(CONTACTS))
            now += timedelta(minutes=draw(st.integers(0, 36 * 60)))
            if op == "upsert":
                attrs = {"city": draw(st.sampled_from(CITIES)), "age": draw(st.integers(0, 6))}
                if draw(st.booleans()):
                    attrs["vip"] = draw(st.booleans())
                body: dict[str, Any] = {"contact_id": cid, "attributes": attrs,
                                        "updated_at": now.isoformat()}
                contact = naive.setdefault(cid, NaiveContact(cid))
                contact.attrs.update(attrs)
                if draw(st.integers(0, 3)) == 0:
                    body["account_id"] = contact.account_id = draw(
                        st.sampled_from(["acc1", "acc2"]))
                driver.send("contact", body)
            elif op in ("event", "dup") and (op == "event" or not sent):
                body = {"event_id": f"e{step}", "contact_id": cid,
                        "type": draw(st.sampled_from(TYPES)),
                        "occurred_at": (now - timedelta(minutes=draw(
                            st.integers(0, 3 * 1440)))).isoformat(),
                        "properties": {"amount": draw(st.integers(0, 10)),
                                       "category": draw(st.sampled_from(CATEGORIES))}}
                sent.append(body)
                _send_event(driver, naive, body)
            elif op == "dup":
                _send_event(driver, naive, draw(st.sampled_from(sent)))
            elif op == "static":
                segment_id = draw(st.sampled_from([d.id for d in defs]))
                edit = draw(st.sampled_from(["add", "remove"]))
                driver.send("static_edit", {"segment_id": segment_id, "contact_id": cid,
                                            "op": edit})
                naive.setdefault(cid, NaiveContact(cid)).static[segment_id] = edit == "add"
            elif op == "account":
                account_id = draw(st.sampled_from(["acc1", "acc2"]))
                accounts[account_id] = {"size": draw(st.integers(0, 6))}
                driver.send("account", {"account_id": account_id, "mode": "replace",
                                        "attributes": accounts[account_id]})
            elif op == "delete":
                driver.send("contact", {"contact_id": cid, "op": "delete"})
                naive.pop(cid, None)
            elif op == "redefine":
                # A new version with the same condition: every partition
                # backfills it over its contacts (chunks, between batches).
                body = bodies[draw(st.integers(0, len(bodies) - 1))]
                body["version"] += 1
                pending[:] = [b for b in pending if b is not body]  # defined now
                driver.send("segment", dict(body))
            elif op == "define":
                if pending:
                    RUN["late"] += 1
                    driver.send("segment", dict(pending.pop(0)))
            elif op == "run":
                driver.run(settle=False)
            else:
                RUN["faults"] += 1
                driver.run(settle=False)
                if op == "crash":
                    driver.crash()
                else:
                    driver.restart(keep_local=op == "restart")
        for body in pending:
            RUN["late"] += 1
            driver.send("segment", dict(body))
        driver.run_until_idle()
        assert not driver.dead_letters, driver.dead_letters
        _check(driver, defs, naive, accounts, start)
    finally:
        driver.close()


def _send_event(driver: Driver, naive: dict[str, NaiveContact], body: dict[str, Any]) -> None:
    event = Interaction.model_validate(body)
    driver.send("interaction", body)
    naive.setdefault(event.contact_id, NaiveContact(event.contact_id)).add_event(event)


def _check(driver: Driver, defs: list[SegmentDefinition], naive: dict[str, NaiveContact],
           accounts: dict[str, dict[str, Any]], start: Any) -> None:
    folded = driver.members()
    for cid in CONTACTS:
        number = partition_for(cid, PARTITIONS)
        processor = driver.processors[number]
        txn = processor.store.begin()
        raw = txn.get(Keyspace.CONTACTS, contact_key(cid))
        txn.close()
        contact = naive.get(cid)
        if contact is None:
            assert raw is None, f"{cid} was deleted but has state"
            expected = {d.id: False for d in defs}
        else:
            clock = processor.event_clock  # None: no timed input yet, the wall clock
            now = from_us(clock) if clock is not None else start
            expected = naive_memberships(defs, contact, accounts, now)
        state = ContactState.from_bytes(raw) if raw is not None else None
        for d in defs:
            got_state = state.is_member(d.id) if state is not None else False
            got_topic = cid in folded.get(d.id, set())
            assert got_state == expected[d.id], (cid, d.id, "state", expected)
            assert got_topic == expected[d.id], (cid, d.id, "change topic", expected, [
                (c.change, c.sequence, c.cause.kind) for c in driver.outputs
                if c.contact_id == cid and c.segment_id == d.id])
    RUN["changes"] += len(driver.outputs)


def test_runtime_equals_naive() -> None:
    RUN.update(n=0, faults=0, changes=0, late=0)
    _runtime_equals_naive()
    print(f"\nruntime differential: {RUN['n']} examples, {RUN['faults']} faults, "
          f"{RUN['changes']} changes, {RUN['late']} segments defined after data")
    assert RUN["n"] >= min(MAX_EXAMPLES, 30)
    assert RUN["faults"] > 0
    assert RUN["late"] > 0
