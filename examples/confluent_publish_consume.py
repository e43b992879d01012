#!/usr/bin/env python3
"""Publish to segmentflow and consume its membership changes with
confluent-kafka (librdkafka), a client segmentflow itself does not use.

What it does, against a running worker (docs/integrating.md explains each step):

1. defines a segment through the HTTP API and waits until every partition
   applied it;
2. bootstraps a consumer from the compacted ``<prefix>.memberships`` topic,
   then follows ``<prefix>.membership-changes`` from the offsets noted
   before the snapshot was read;
3. publishes a contact and two purchases keyed by ``contact_id`` (with the
   ``murmur2_random`` partitioner, Kafka's default one: Java, aiokafka and
   segmentflow place a key on the same partition) and waits for ``joined``;
4. bootstraps a second, late consumer from the snapshot: the contact is there;
5. moves the contact out of the segment (``left``), feeds the first change
   through the sequence filter again (a replay: dropped), erases the contact
   (``left`` with cause ``erasure``: the filter forgets the pair) and
   re-creates it (``joined`` with sequence 1 again, accepted);
6. publishes an interaction whose time has no UTC offset and reads its
   dead letter.

Only the standard library and confluent-kafka: nothing of segmentflow is
imported. The last line of the output is ``summary: {json}``. Exit status 0
when everything above was seen, 1 otherwise (the reason on stderr).

    python examples/confluent_publish_consume.py --bootstrap 127.0.0.1:9092 \\
        --prefix segmentflow --api http://127.0.0.1:6066 --token "$SEGMENTFLOW_API_TOKEN"
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

FORMULA = 'country = "France" and performed purchase at least 2 times within last 30 days'


# -- partitioning ------------------------------------------------------------------


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (the Java client's ``Utils.murmur2``), unsigned."""
    m, h = 0x5BD1E995, (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    whole = len(data) - len(data) % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = data[whole:]
    if len(rest) >= 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if rest:
        h = ((h ^ rest[0]) * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a key: where segmentflow
    puts a contact's inputs and membership changes."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


# -- Kafka ------------------------------------------------------------------------------


def producer_config(bootstrap: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        # librdkafka's default is consistent_random (CRC32), not Kafka's murmur2.
        "partitioner": "murmur2_random",
        "enable.idempotence": True,  # acks=all, no duplicates from retries
        "linger.ms": 5,
    }


def consumer_config(bootstrap: str) -> dict[str, Any]:
    # librdkafka wants a group id even for assign(); nothing is committed.
    return {"bootstrap.servers": bootstrap, "group.id": f"example-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False, "auto.offset.reset": "earliest"}


def partition_count(client: Producer | Consumer, topic: str, timeout: float = 10.0) -> int:
    metadata = client.list_topics(topic, timeout=timeout).topics[topic]
    if metadata.error is not None:
        raise KafkaException(metadata.error)
    return len(metadata.partitions)


class Publisher:
    """JSON values keyed by contact_id, each delivery checked."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer(producer_config(bootstrap))
        self.delivered: list[tuple[str, str, int]] = []  # (topic, key, partition)

    def send(self, topic: str, key: str, value: dict[str, Any]) -> None:
        def report(err: Any, msg: Any) -> None:
            if err is not None:
                raise KafkaException(err)
            self.delivered.append((msg.topic(), msg.key().decode(), msg.partition()))

        self.producer.produce(topic, key=key.encode(), value=json.dumps(value).encode(),
                              on_delivery=report)

    def flush(self, timeout: float = 30.0) -> None:
        if self.producer.flush(timeout) > 0:
            raise RuntimeError(f"records not delivered within {timeout} s")


def high_watermarks(consumer: Consumer, topic: str, partitions: int) -> dict[int, int]:
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10.0)[1]
            for p in range(partitions)}


def read_to(consumer: Consumer, ends: dict[int, int], on_record: Callable[[Any], None],
            timeout: float) -> None:
    """Consume the assigned partitions until each reaches its end offset."""
    positions = {p: -1 for p in ends}
    deadline = time.monotonic() + timeout
    while any(positions[p] + 1 < end for p, end in ends.items()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not read to {ends} within {timeout} s (at {positions})")
        for msg in consumer.consume(num_messages=500, timeout=0.2):
            if msg.error() is not None:
                raise KafkaException(msg.error())
            positions[msg.partition()] = msg.offset()
            on_record(msg)


# -- the consumer's side: snapshot bootstrap and the sequence filter ------------------


class Membership:
    """What a journey engine keeps: the members, and the last sequence applied
    per (segment, contact) — the sequence filter."""

    def __init__(self) -> None:
        self.members: set[tuple[str, str]] = set()
        self.marks: dict[tuple[str, str], int] = {}

    def seed(self, key: bytes, value: bytes | None) -> None:
        """One record of the compacted memberships topic (the last per key wins)."""
        pair = tuple(key.decode().split("/", 1))
        if value is None:  # a tombstone: not a member (any more)
            self.members.discard(pair)  # type: ignore[arg-type]
            self.marks.pop(pair, None)  # type: ignore[arg-type]
            return
        record = json.loads(value)
        pair = (record["segment_id"], record["contact_id"])
        self.members.add(pair)
        self.marks[pair] = record["sequence"]

    def apply(self, change: dict[str, Any]) -> bool:
        """Apply a membership change unless it is a replay; True if applied."""
        pair = (change["segment_id"], change["contact_id"])
        if change["sequence"] <= self.marks.get(pair, 0):
            return False  # already applied: a replay after a crash
        if change["change"] == "joined":
            self.members.add(pair)
        else:
            self.members.discard(pair)
        if change["cause"]["kind"] == "erasure":
            # The contact's state is gone: if the id comes back, its sequences
            # start again at 1.
            self.marks.pop(pair, None)
        else:
            self.marks[pair] = change["sequence"]
        return True


def bootstrap(bootstrap_servers: str, prefix: str,
              timeout: float) -> tuple[Membership, dict[int, int]]:
    """Members from the compacted snapshot, and the membership-changes offsets
    to follow from (noted *before* the snapshot is read: any change after
    them is then seen, and the filter drops what the snapshot already has)."""
    snapshot_topic, changes_topic = f"{prefix}.memberships", f"{prefix}.membership-changes"
    consumer = Consumer(consumer_config(bootstrap_servers))
    try:
        start = high_watermarks(consumer, changes_topic,
                                partition_count(consumer, changes_topic))
        partitions = partition_count(consumer, snapshot_topic)
        ends = high_watermarks(consumer, snapshot_topic, partitions)
        membership = Membership()
        consumer.assign([TopicPartition(snapshot_topic, p, OFFSET_BEGINNING)
                         for p in range(partitions)])
        read_to(consumer, ends, lambda m: membership.seed(m.key(), m.value()), timeout)
        return membership, start
    finally:
        consumer.close()


class ChangeFollower:
    """Follows membership-changes from given offsets through a Membership."""

    def __init__(self, bootstrap_servers: str, prefix: str, start: dict[int, int],
                 membership: Membership) -> None:
        self.topic = f"{prefix}.membership-changes"
        self.membership = membership
        self.consumer = Consumer(consumer_config(bootstrap_servers))
        self.partitions = partition_count(self.consumer, self.topic)
        self.consumer.assign([TopicPartition(self.topic, p, start.get(p, OFFSET_BEGINNING))
                              for p in range(self.partitions)])
        self.seen: list[tuple[dict[str, Any], int, bool]] = []  # (change, partition, applied)

    def wait_for(self, wanted: Callable[[dict[str, Any]], bool], timeout: float,
                 log: Callable[[str], None]) -> tuple[dict[str, Any], int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(num_messages=500, timeout=0.2):
                if msg.error() is not None:
                    raise KafkaException(msg.error())
                change = json.loads(msg.value())
                applied = self.membership.apply(change)
                self.seen.append((change, msg.partition(), applied))
                log(describe(change, msg.partition(), applied))
                if wanted(change):
                    return change, msg.partition()
        raise TimeoutError(f"no such change on {self.topic} within {timeout} s")

    def close(self) -> None:
        self.consumer.close()


def describe(change: dict[str, Any], partition: int | None, applied: bool) -> str:
    cause = change["cause"]["kind"] + (f":{change['cause']['ref']}"
                                       if change["cause"].get("ref") else "")
    where = f"partition={partition}" if partition is not None else "replayed"
    return (f"change  {change['change']:<6}  {change['segment_id']}  {change['contact_id']}  "
            f"seq={change['sequence']}  cause={cause}  {where}  "
            f"{'applied' if applied else 'dropped (sequence not greater)'}")


# -- the HTTP API ----------------------------------------------------------------------


class Api:
    def __init__(self, url: str, token: str | None) -> None:
        self.url, self.token = url.rstrip("/"), token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            self.url + path, method=method,
            data=json.dumps(body).encode() if body is not None else None)
        if body is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: HTTP {exc.code}: "
                               f"{exc.read().decode(errors='replace')}") from None

    def define(self, segment_id: str, formula: str, timeout: float) -> int:
        """Create or update a live segment; wait until every partition applied
        it and finished its backfill. Returns its version."""
        accepted = self.call("PUT", f"/segments/{segment_id}",
                             {"name": "Example: French repeat buyers", "status": "live",
                              "formula": formula})
        version = accepted["version"]
        deadline = time.monotonic() + timeout
        while True:
            go_live = self.call("GET", f"/segments/{segment_id}/status")["go_live"]
            if go_live["version"] == version and go_live["complete"]:
                return version
            if time.monotonic() > deadline:
                raise TimeoutError(f"segment {segment_id} v{version} not applied: {go_live}")
            time.sleep(0.1)  # the API has no push; poll the go-live progress


# -- the walk-through -------------------------------------------------------------------


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def contact(contact_id: str, country: str) -> dict[str, Any]:
    return {"contact_id": contact_id, "attributes": {"country": country}, "updated_at": now()}


def purchase(event_id: str, contact_id: str, amount: float) -> dict[str, Any]:
    return {"event_id": event_id, "contact_id": contact_id, "type": "purchase",
            "occurred_at": now(), "properties": {"amount": amount}}


def run(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    prefix, cid, segment = args.prefix, args.contact, args.segment
    topics = {name: f"{prefix}.{name}" for name in ("contacts", "interactions")}
    api = Api(args.api, args.token)

    version = api.define(segment, FORMULA, args.timeout)
    log(f"segment {segment} v{version} applied on every partition: {FORMULA}")

    membership, start = bootstrap(args.bootstrap, prefix, args.timeout)
    log(f"bootstrap: {len(membership.members)} members in {prefix}.memberships; following "
        f"{prefix}.membership-changes from offsets {start}")
    follower = ChangeFollower(args.bootstrap, prefix, start, membership)
    publisher = Publisher(args.bootstrap)

    def mine(change: str, sequence: int) -> Callable[[dict[str, Any]], bool]:
        return lambda c: (c["segment_id"] == segment and c["contact_id"] == cid
                          and c["change"] == change and c["sequence"] == sequence)

    try:
        # 3. A contact and two purchases, keyed by contact_id.
        publisher.send(topics["contacts"], cid, contact(cid, "France"))
        publisher.send(topics["interactions"], cid, purchase(f"{cid}-p1", cid, 20.0))
        publisher.send(topics["interactions"], cid, purchase(f"{cid}-p2", cid, 35.5))
        publisher.flush()
        for topic, key, partition in publisher.delivered:
            expected = partition_for(key, partition_count(publisher.producer, topic))
            log(f"published {key} to {topic}[{partition}] (murmur2 says {expected})")
        first, change_partition = follower.wait_for(mine("joined", 1), args.timeout, log)

        # 4. A late consumer bootstraps from the snapshot and finds the member.
        # The snapshot record is sent with the change, not atomically with it:
        # read the snapshot again until it shows up.
        deadline = time.monotonic() + args.timeout
        while True:
            late, _ = bootstrap(args.bootstrap, prefix, args.timeout)
            if (segment, cid) in late.members or time.monotonic() > deadline:
                break
        late_seq = late.marks.get((segment, cid))
        log(f"late consumer: {cid} in {segment} from the snapshot: "
            f"{(segment, cid) in late.members} (sequence {late_seq})")

        # 5. Leave, a replay, erasure, and the same id again.
        publisher.send(topics["contacts"], cid, contact(cid, "Spain"))
        publisher.flush()
        follower.wait_for(mine("left", 2), args.timeout, log)
        replay_applied = membership.apply(first)
        log(describe(first, None, replay_applied))
        publisher.send(topics["contacts"], cid, {"op": "delete", "contact_id": cid})
        publisher.flush()
        erasure, _ = follower.wait_for(
            lambda c: c["segment_id"] == segment and c["contact_id"] == cid
            and c["cause"]["kind"] == "erasure", args.timeout, log)
        publisher.send(topics["contacts"], cid, contact(cid, "France"))
        publisher.send(topics["interactions"], cid, purchase(f"{cid}-p3", cid, 12.0))
        publisher.send(topics["interactions"], cid, purchase(f"{cid}-p4", cid, 8.0))
        publisher.flush()
        follower.wait_for(mine("joined", 1), args.timeout, log)  # after the erasure

        # 6. Bad input goes to the dead-letter topic with a reason.
        dead_letter = read_dead_letter(args, publisher, cid, log)
    finally:
        follower.close()

    changes = [{"change": c["change"], "sequence": c["sequence"], "cause": c["cause"]["kind"],
                "applied": applied, "partition": p}
               for c, p, applied in follower.seen
               if c["segment_id"] == segment and c["contact_id"] == cid]
    return {
        "segment": segment, "contact": cid, "segment_version": version,
        "partitions": follower.partitions,
        "expected_partition": partition_for(cid, follower.partitions),
        "change_partition": change_partition,
        "published": [{"topic": t, "partition": p,
                       "expected": partition_for(k, partition_count(publisher.producer, t))}
                      for t, k, p in publisher.delivered],
        "changes": changes,
        "replay_dropped": not replay_applied,
        "erasure_sequence": erasure["sequence"],
        "late_bootstrap": {"member": (segment, cid) in late.members, "sequence": late_seq},
        "member_at_end": (segment, cid) in membership.members,
        "dead_letter_reason": dead_letter["reason"],
    }


def read_dead_letter(args: argparse.Namespace, publisher: Publisher, cid: str,
                     log: Callable[[str], None]) -> dict[str, Any]:
    topic = f"{args.prefix}.dead-letters"
    consumer = Consumer(consumer_config(args.bootstrap))
    try:
        partitions = partition_count(consumer, topic)
        start = high_watermarks(consumer, topic, partitions)
        consumer.assign([TopicPartition(topic, p, o) for p, o in start.items()])
        # A time without a UTC offset: refused (which instant would it be?).
        bad = {"event_id": f"{cid}-bad", "contact_id": cid, "type": "purchase",
               "occurred_at": now().replace("Z", "")}
        publisher.send(f"{args.prefix}.interactions", cid, bad)
        publisher.flush()
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=100, timeout=0.2):
                if msg.error() is not None:
                    raise KafkaException(msg.error())
                record = json.loads(msg.value())
                if msg.key() == cid.encode() and f"{cid}-bad".encode() in _raw(record):
                    log(f"dead letter from {record['source_topic']}[{record['partition']}]"
                        f"@{record['offset']}: {record['reason']}")
                    return record
        raise TimeoutError(f"no dead letter for {cid}-bad within {args.timeout} s")
    finally:
        consumer.close()


def _raw(record: dict[str, Any]) -> bytes:
    if record.get("raw_base64") is not None:
        return base64.b64decode(record["raw_base64"])
    return record["preview"].encode()


def check(summary: dict[str, Any]) -> Iterable[str]:
    """What the walk-through must have seen; each problem as a sentence."""
    kinds = [(c["change"], c["sequence"]) for c in summary["changes"]]
    if kinds != [("joined", 1), ("left", 2), ("left", 4), ("joined", 1)]:
        yield f"changes {kinds}, expected joined 1, left 2, left 4 (erasure), joined 1"
    if summary["change_partition"] != summary["expected_partition"]:
        yield (f"change on partition {summary['change_partition']}, murmur2 says "
               f"{summary['expected_partition']}")
    for record in summary["published"]:
        if record["partition"] != record["expected"]:
            yield (f"published to {record['topic']}[{record['partition']}], murmur2 says "
                   f"{record['expected']}: is the producer's partitioner murmur2_random?")
    if not summary["replay_dropped"]:
        yield "the replayed change was applied again"
    if not summary["late_bootstrap"]["member"]:
        yield "the late consumer did not find the member in the snapshot"
    if not summary["member_at_end"]:
        yield "the re-created contact is not a member at the end"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument("--prefix", default="segmentflow", help="SEGMENTFLOW_TOPIC_PREFIX")
    parser.add_argument("--api", default="http://127.0.0.1:6066", help="a worker's API")
    parser.add_argument("--token", default=None, help="SEGMENTFLOW_API_TOKEN (writes)")
    parser.add_argument("--segment", default="example-french-buyers")
    parser.add_argument("--contact", default=f"example-{uuid.uuid4().hex[:8]}")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per wait")
    args = parser.parse_args(argv)
    summary = run(args, lambda line: print(line, flush=True))
    problems = list(check(summary))
    print("summary: " + json.dumps(summary, sort_keys=True), flush=True)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
