"""The console's live feed without a broker: fan-out by segment, bounded
queues that count what they drop, the end marker on shutdown, and the
server-sent event framing."""

from __future__ import annotations

import orjson

from app.console.feed import QUEUE_SIZE, ChangeFeed, Subscription, sse_event


def change(segment: str, contact: str = "c1") -> bytes:
    return orjson.dumps({"segment_id": segment, "contact_id": contact, "change": "joined"})


async def test_changes_reach_the_subscribers_of_their_segment() -> None:
    feed = ChangeFeed("unused:9092", "t.membership-changes", 2)
    every, paris = Subscription(None), Subscription("paris")
    feed._subscribers.update({every, paris})
    feed._dispatch(change("paris"))
    feed._dispatch(change("lyon"))
    feed._dispatch(b"not json")
    feed._dispatch(None)
    assert every.queue.qsize() == 2 and paris.queue.qsize() == 1
    assert orjson.loads(paris.queue.get_nowait())["segment_id"] == "paris"


async def test_a_slow_subscriber_loses_changes_and_is_told_how_many() -> None:
    sub = Subscription(None)
    for i in range(QUEUE_SIZE + 3):
        sub.offer("paris", change("paris", f"c{i}"))
    assert sub.queue.qsize() == QUEUE_SIZE and sub.dropped == 3
    sub.close()  # the end marker gets in even when the queue is full
    items = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
    assert items[-1] is None and sub.dropped == 4


async def test_close_ends_every_stream_and_refuses_new_ones() -> None:
    feed = ChangeFeed("unused:9092", "t.membership-changes", 2)
    sub = Subscription("paris")
    feed._subscribers.add(sub)
    await feed.close()
    assert sub.queue.get_nowait() is None and feed.subscribers == 0
    try:
        await feed.subscribe(None)
    except RuntimeError as exc:
        assert "stopping" in str(exc)
    else:
        raise AssertionError("a closed feed accepted a subscriber")


def test_event_framing_and_one_line_data() -> None:
    assert sse_event("change", b'{"a":1}') == b'event: change\ndata: {"a":1}\n\n'
    feed = ChangeFeed("unused:9092", "t", 1)
    sub = Subscription(None)
    feed._subscribers.add(sub)
    feed._dispatch(b'{"segment_id":\n"paris"}')  # a record with a newline inside
    assert b"\n" not in sub.queue.get_nowait()


async def test_structured_cloudevents_reach_the_feed_as_changes() -> None:
    """SEGMENTFLOW_CHANGES_FORMAT=cloudevents-structured: the browser gets the
    change (the event's data), filtered by its segment."""
    from datetime import UTC, datetime

    from models.change_events import encode_change
    from models.changes import MembershipChange

    joined = MembershipChange.model_validate({
        "segment_id": "paris", "contact_id": "c1", "change": "joined",
        "at": datetime(2026, 1, 1, tzinfo=UTC), "cause": {"kind": "interaction"},
        "segment_version": 1, "sequence": 1})
    _, value, _ = encode_change(joined, "cloudevents-structured", "t")
    feed = ChangeFeed("unused:9092", "t.membership-changes", 2)
    paris = Subscription("paris")
    feed._subscribers.add(paris)
    feed._dispatch(value)
    sent = orjson.loads(paris.queue.get_nowait())
    assert "specversion" not in sent and sent["contact_id"] == "c1"
