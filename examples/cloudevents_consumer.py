#!/usr/bin/env python3
"""A journey engine's consumer of segmentflow's membership changes published
as CloudEvents (``SEGMENTFLOW_CHANGES_FORMAT=cloudevents-binary`` or
``cloudevents-structured``; docs/cloudevents.md), with confluent-kafka and
the CloudEvents Python SDK: neither is used by segmentflow itself.

It reads ``<prefix>.membership-changes``, turns each record into a
CloudEvent with the SDK's Kafka binding (binary or structured mode, told
apart by the SDK), drops replays by the event id and keeps the members. A
line per event:

    joined  french-buyers  c1  id=french-buyers/c1/1  applied
    joined  french-buyers  c1  id=french-buyers/c1/1  replay: dropped

    python examples/cloudevents_consumer.py --bootstrap 127.0.0.1:9092 \\
        --prefix segmentflow --group journeys [--max-events N] [--idle-seconds S]

The last line is ``members: {json}``. Nothing of segmentflow is imported.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from cloudevents.core.bindings import kafka as ce_kafka
from confluent_kafka import Consumer, KafkaException

JOINED = "io.segmentflow.membership.joined"
LEFT = "io.segmentflow.membership.left"


def to_cloudevent(key: bytes | None, value: bytes,
                  headers: list[tuple[str, bytes]] | None) -> Any:
    """A membership-changes record as a CloudEvent (either content mode)."""
    message = ce_kafka.KafkaMessage(headers=dict(headers or []), key=key, value=value)
    return ce_kafka.from_kafka_event(message)


class Journeys:
    """Current members, fed with change events; a replayed event (an id
    already applied) is dropped.

    The id is ``<segment_id>/<contact_id>/<sequence>``: a replay after a
    crash has the id of the first copy. An erasure forgets the contact, and
    a contact id that comes back counts from sequence 1 again, so the ids of
    a pair are forgotten when its erasure is applied (as the sequence filter
    forgets its mark, docs/integrating.md). Keep ``seen`` with your offsets
    (same transaction or file) so that a restart replays harmlessly too."""

    def __init__(self) -> None:
        self.members: set[tuple[str, str]] = set()
        self.seen: dict[tuple[str, str], set[str]] = {}

    def apply(self, event: Any) -> bool:
        change = event.get_data()  # the native change: segment_id, contact_id, cause, sequence…
        pair = (change["segment_id"], change["contact_id"])
        if event.get_id() in self.seen.get(pair, ()):
            return False
        if event.get_type() == JOINED:
            self.members.add(pair)
        elif event.get_type() == LEFT:
            self.members.discard(pair)
        else:
            return False  # not a membership change
        if change["cause"]["kind"] == "erasure":
            self.seen.pop(pair, None)
        else:
            self.seen.setdefault(pair, set()).add(event.get_id())
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--prefix", default="segmentflow", help="SEGMENTFLOW_TOPIC_PREFIX")
    parser.add_argument("--group", default="journeys", help="this consumer's group")
    parser.add_argument("--max-events", type=int, default=None, help="stop after N events")
    parser.add_argument("--idle-seconds", type=float, default=None,
                        help="stop after this long without a record")
    args = parser.parse_args(argv)
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([f"{args.prefix}.membership-changes"])
    journeys, count, last = Journeys(), 0, time.monotonic()
    try:
        while args.max_events is None or count < args.max_events:
            message = consumer.poll(0.5)
            if message is None:
                if args.idle_seconds is not None and time.monotonic() - last > args.idle_seconds:
                    break
                continue
            if message.error():
                raise KafkaException(message.error())
            last = time.monotonic()
            event = to_cloudevent(message.key(), message.value(), message.headers())
            applied = journeys.apply(event)
            count += 1
            change = event.get_data()
            print(f"{change['change']:<7} {change['segment_id']}  {event.get_subject()}  "
                  f"id={event.get_id()}  {'applied' if applied else 'replay: dropped'}",
                  flush=True)
            consumer.commit(message=message, asynchronous=False)  # after applying it
    finally:
        consumer.close()
    print("members: " + json.dumps(sorted(f"{s}/{c}" for s, c in journeys.members)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
