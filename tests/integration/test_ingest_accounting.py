"""Every input is accounted for (issue #11, "Safety"): fuzzed inputs on every
upstream topic — random bytes, wrong types, missing fields, non-finite and
out-of-range numbers, deep nesting, unknown event types, invalid ids, sizes
around every limit — each end up exactly once either forwarded to the
evaluator's log (identified by its ``segmentflow-source`` header) or
dead-lettered with a reason, on the real broker."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from agents.ingest import SOURCE_HEADER, envelope_around
from app.settings import Settings
from models.values import INT_MAX, MAX_DEPTH, MAX_STRING_LENGTH

pytestmark = pytest.mark.kafka

BAD_IDS = ["\u0000", "a/b", "..", "a\nb", '"<script>', "", "é", "x" * 201]
KIND = {"contacts": "contact", "interactions": "interaction", "static-edits": "static_edit",
        "accounts": "account", "segment-definitions": "segment"}


@dataclass
class Input:
    topic: str  # short name: contacts, accounts…
    value: bytes | None
    expect: str  # "forward", or a fragment of the dead-letter reason ("" = any reason)
    key: bytes | None = None
    partition: int = -1
    offset: int = -1


def _j(doc: Any) -> bytes:
    return orjson.dumps(doc)


def _padded(doc: dict[str, Any], size: int, field: str) -> bytes:
    """``doc`` with ``doc[field]`` an object of strings padding it to ``size`` bytes."""
    k = max(1, -(-size // (MAX_STRING_LENGTH - 1000)))
    pads = {f"p{i}": "" for i in range(k)}
    room = size - len(_j({**doc, field: pads}))
    assert room >= 0
    for i in range(k):
        take = min(room, MAX_STRING_LENGTH)
        pads[f"p{i}"] = "x" * take
        room -= take
    out = _j({**doc, field: pads})
    assert room == 0 and len(out) == size
    return out


def inputs(rng: random.Random, limit: int) -> list[Input]:
    out: list[Input] = []
    add = out.append
    event = {"event_id": "e1", "contact_id": "c1", "type": "purchase",
             "occurred_at": "2026-01-01T00:00:00Z", "properties": {"amount": 5}}
    bases: dict[str, list[tuple[dict[str, Any], str, list[str]]]] = {
        # (valid document, its object-valued field or "", its id fields)
        "contacts": [({"contact_id": "c1", "attributes": {"city": "Paris", "n": 1}},
                      "attributes", ["contact_id", "account_id"])],
        "accounts": [({"account_id": "a1", "attributes": {"tier": "gold"}}, "attributes",
                      ["account_id"])],
        "interactions": [(event, "properties", ["event_id", "contact_id"])],
        "static-edits": [({"segment_id": "s1", "contact_id": "c1", "op": "add"}, "",
                          ["segment_id", "contact_id"])],
        "segment-definitions": [({"id": "s1", "name": "S", "formula": 'city = "Paris"',
                                  "status": "live"}, "", ["id"])],
    }
    bad_values = [("NaN", "numbers must be finite"), ("Infinity", "numbers must be finite"),
                  ("-Infinity", "numbers must be finite"), ("1e400", "numbers must be finite"),
                  (str(INT_MAX + 1), "64-bit range"), ("-1e999", "numbers must be finite")]
    for topic, [(doc, obj, ids)] in bases.items():
        n = 0

        def ident(prefix: str) -> str:
            nonlocal n
            n += 1
            return f"{prefix}{n}"

        def valid(doc: dict[str, Any] = doc, ids: list[str] = ids) -> dict[str, Any]:
            d = dict(doc)
            for f in ids:
                if f in d or f == "account_id":
                    d[f] = ident(f[0])
            return d

        for _ in range(8):
            add(Input(topic, _j(valid()), "forward"))
        for _ in range(6):
            add(Input(topic, rng.randbytes(rng.randint(0, 64)), ""))
        add(Input(topic, None, "empty message"))
        add(Input(topic, b"", ""))
        for garbage in (b"[]", b"42", b'"x"', b"null", b"{", b'{"a": 1}'):
            add(Input(topic, garbage, ""))
        for field in ids:
            for bad in rng.sample(BAD_IDS, 4):
                d = valid()
                d[field] = bad
                add(Input(topic, _j(d), field))
            d = valid()
            d[field] = rng.choice([5, None, ["x"], {"x": 1}, True])
            if not (field == "account_id" and d[field] is None):
                add(Input(topic, _j(d), field))
            d = valid()
            if field in d and field != "account_id":
                del d[field]
                add(Input(topic, _j(d), "Field required"))
        d = valid()
        d["unexpected_field"] = 1
        add(Input(topic, _j(d), "Extra inputs are not permitted"))
        if obj:
            for text, reason in bad_values:
                raw = _j({**valid(), obj: {"v": "BAD"}}).replace(b'"BAD"', text.encode())
                add(Input(topic, raw, reason))
            for depth, expect in ((MAX_DEPTH, "forward"), (MAX_DEPTH + 1, "nesting deeper")):
                d = valid()
                d[obj] = {"deep": orjson.loads(b"[" * depth + b"]" * depth)}
                add(Input(topic, _j(d), expect))
            for size, expect in ((MAX_STRING_LENGTH, "forward"),
                                 (MAX_STRING_LENGTH + 1, f"exceeds {MAX_STRING_LENGTH}")):
                d = valid()
                d[obj] = {"s": "y" * size}
                add(Input(topic, _j(d), expect))
            d = valid()
            d[obj] = {"score": rng.choice([1.5, -2**63, 2**63 - 1, 1e308, "x", [1, {"a": None}]])}
            add(Input(topic, _j(d), "forward"))
            # sizes around the forwarded limit and the input limit
            envelope = len(envelope_around(KIND[topic], b""))
            for size, expect in ((limit - envelope, "forward"),
                                 (limit - envelope + 1, "forwarded record of"),
                                 (limit, "forwarded record of"),
                                 (limit + 1, f"input of {limit + 1} bytes exceeds")):
                add(Input(topic, _padded(valid(), size, obj), expect))
    # Unknown event types, and the review's 1,048,540-byte contact.
    add(Input("interactions", _j({**event, "event_id": "e-x", "type": "telepathy"}), "type"))
    add(Input("interactions", _j({**event, "event_id": "e-y", "type": ""}), "type"))
    add(Input("contacts", _padded({"contact_id": "huge"}, 1_048_540, "attributes"),
              "input of 1048540 bytes exceeds"))
    # Segment definitions: a formula that does not parse, a version the state
    # cannot pack, a bad time zone; deletes.
    seg = bases["segment-definitions"][0][0]
    add(Input("segment-definitions", _j({**seg, "id": "s-f", "formula": "city = "}), "formula"))
    add(Input("segment-definitions", _j({**seg, "id": "s-v", "version": 2**32}),
              "largest version"))
    add(Input("segment-definitions", _j({**seg, "id": "s-t", "timezone": "Mars/Base"}),
              "time zone"))
    add(Input("segment-definitions", _j({"op": "delete", "segment_id": "s-gone"}), "forward"))
    add(Input("segment-definitions", _j({"op": "delete", "segment_id": "a/b"}), "segment_id"))
    rng.shuffle(out)
    for item in out:
        item.key = rng.choice([None, b"k", item.topic.encode()]) if item.value else b"k"
    return out


async def _read_until(
    bootstrap: str, topics: list[str], done: Callable[[list[Any]], bool], timeout: float,
) -> list[Any]:
    """Records of ``topics`` until ``done(records)``, then up to the end
    offsets (a duplicate arriving with the last ones would show)."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                fetch_max_bytes=8 * 2**20, max_partition_fetch_bytes=2 * 2**20,
                                metadata_max_age_ms=1000)
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while not done(records):
            assert time.monotonic() < deadline, f"timed out with {len(records)} records"
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
        ends = await consumer.end_offsets(list(consumer.assignment()))
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def _publish(settings: Settings, items: list[Input]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all",
                                compression_type="gzip", max_request_size=4 * 2**20)
    await producer.start()
    try:
        names = {short: f"{settings.topic_prefix}.{short}" for short in KIND}
        futures = [await producer.send(names[i.topic], i.value, key=i.key) for i in items]
        for item, future in zip(items, futures, strict=True):
            meta = await future
            item.partition, item.offset = meta.partition, meta.offset
    finally:
        await producer.stop()


def _source(record: Any) -> tuple[str, int, int] | None:
    for name, value in record.headers or ():
        if name == SOURCE_HEADER:
            topic, partition, offset = value.decode().rsplit(":", 2)
            return topic, int(partition), int(offset)
    return None


async def test_every_fuzzed_input_is_forwarded_or_dead_lettered_exactly_once(
    settings, worker_factory,
):
    worker = worker_factory(settings)
    worker.start()
    await worker.wait_ready()
    limit = settings.max_input_bytes
    items = inputs(random.Random(11), limit)
    await _publish(settings, items)
    prefix = settings.topic_prefix
    where = {(f"{prefix}.{i.topic}", i.partition, i.offset): i for i in items}
    assert len(where) == len(items)
    upstream = {f"{prefix}.{short}" for short in KIND}
    broadcast = {f"{prefix}.accounts", f"{prefix}.segment-definitions"}
    copies = {t: settings.partitions if t in broadcast else 1 for t in upstream}

    log, dead_topic = settings.topics.evaluator_input, settings.topics.dead_letters

    def accounted(records: list[Any]) -> bool:
        keys = {_source(r) if r.topic == log else _letter_source(r) for r in records}
        return len(keys & where.keys()) == len(items)

    records = await _read_until(settings.bootstrap_servers, [log, dead_topic], accounted,
                                timeout=90)
    forwarded = [r for r in records if r.topic == log]
    letters = [r for r in records if r.topic == dead_topic]

    by_source: dict[tuple[str, int, int], list[Any]] = {}
    for record in forwarded:
        source = _source(record)
        if source is not None:
            by_source.setdefault(source, []).append(record)
    dead: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    evaluator_letters = []
    for record in letters:
        d = _letter(record)
        if d["source_topic"] in upstream:
            dead.setdefault((d["source_topic"], d["partition"], d["offset"]), []).append(d)
        else:
            evaluator_letters.append(d)

    problems = []
    for source, item in where.items():
        sent, refused = by_source.get(source, []), dead.get(source, [])
        what = f"{source} {item.value[:80] if item.value else item.value!r}"
        if item.expect == "forward":
            if refused or len(sent) != copies[source[0]]:
                problems.append(f"{what}: forwarded {len(sent)}x, dead letters {refused}")
                continue
            assert {r.partition for r in sent} == (
                set(range(settings.partitions)) if len(sent) > 1 else {sent[0].partition})
            kind = KIND[item.topic]
            if kind == "segment" and orjson.loads(item.value).get("op") == "delete":
                kind = "segment_delete"
            assert all(r.value == envelope_around(kind, item.value) for r in sent), what
        else:
            if sent or len(refused) != 1:
                problems.append(f"{what}: forwarded {len(sent)}x, dead letters {refused}")
                continue
            reason = refused[0]["reason"]
            if not reason or item.expect not in reason:
                problems.append(f"{what}: reason {reason!r}, want {item.expect!r}")
    assert not problems, "\n".join(problems[:30])
    # Nothing forwarded or dead-lettered that was not an input.
    assert set(by_source) | set(dead) <= set(where)
    # The evaluator refuses nothing but an input near the input limit whose
    # contact state would outgrow SEGMENTFLOW_MAX_CONTACT_STATE_BYTES (it is
    # dead-lettered there with that reason, so still accounted for).
    assert all("would grow to" in d["reason"] for d in evaluator_letters), evaluator_letters[:5]
    counts = {"forward": sum(i.expect == "forward" for i in items)}
    print(f"{len(items)} inputs: {counts['forward']} forwarded, "
          f"{len(items) - counts['forward']} dead-lettered")


def _letter(record: Any) -> dict[str, Any]:
    return orjson.loads(record.value)


def _letter_source(record: Any) -> tuple[str, int, int]:
    d = _letter(record)
    return d["source_topic"], d["partition"], d["offset"]


async def test_a_record_the_broker_refuses_is_dead_lettered_alone(settings, worker_factory):
    """The evaluator's log takes smaller records than ingest forwards (a topic
    configured below SEGMENTFLOW_MAX_INPUT_BYTES): the broker refuses that
    record's batch; resent alone, it is dead-lettered and the others pass."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(
            settings.topics.evaluator_input, settings.partitions, 1,
            topic_configs={"max.message.bytes": "100000"})])
    finally:
        await admin.close()
    worker = worker_factory(settings)
    worker.start()
    await worker.wait_ready()
    items = [Input("contacts", _j({"contact_id": f"c{n}", "attributes": {"n": n}}), "forward")
             for n in range(20)]
    items.insert(7, Input("contacts", _padded({"contact_id": "c-big"}, 150_000, "attributes"),
                          "not forwarded: MessageSizeTooLargeError"))
    for item in items:
        item.key = b"same"  # one upstream partition: one ingest batch, in order
    await _publish(settings, items)
    letters = await _read_until(settings.bootstrap_servers, [settings.topics.dead_letters],
                                lambda rs: len(rs) >= 1, timeout=60)
    [letter] = [_letter(r) for r in letters]
    assert letter["offset"] == items[7].offset
    assert letter["reason"].startswith("not forwarded: MessageSizeTooLargeError"), letter
    offsets = {i.offset for i in items if i.expect == "forward"}
    forwarded = await _read_until(
        settings.bootstrap_servers, [settings.topics.evaluator_input],
        lambda rs: offsets <= {s[2] for r in rs if (s := _source(r)) is not None}, timeout=60)
    sources = [s for r in forwarded if (s := _source(r)) is not None]
    assert sorted(s[2] for s in sources) == sorted(offsets)
