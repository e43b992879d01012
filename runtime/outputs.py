"""The records a membership change becomes on the output topics."""

from __future__ import annotations

import orjson

from models.change_events import encode_change
from models.changes import MembershipChange
from runtime.partitioning import partition_for

__all__ = ["change_record", "change_record_as", "snapshot_record"]


def change_record(change: MembershipChange) -> tuple[bytes, bytes]:
    """Key and value on the membership-changes topic (the contact's
    partition: same key, same partition count as the input log)."""
    return change.contact_id.encode(), change.__pydantic_serializer__.to_json(change)


def change_record_as(change: MembershipChange, fmt: str, prefix: str,
                     ) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Key, value and headers of a change in ``SEGMENTFLOW_CHANGES_FORMAT``
    ``fmt``: native (``change_record``, no headers) or a CloudEvent in
    binary or structured mode (models/change_events.py; ``prefix``, the
    topic prefix, is part of the events' source)."""
    if fmt == "native":
        key, value = change_record(change)
        return key, value, []
    return encode_change(change, fmt, prefix)


def snapshot_record(change: MembershipChange, partitions: int) -> tuple[bytes, bytes | None, int]:
    """Key, value and partition on the compacted memberships topic: the
    membership while it lasts, a tombstone once the contact leaves (so
    compaction forgets former members)."""
    snapshot_id = f"{change.segment_id}/{change.contact_id}"
    value = None
    if change.change == "joined":
        value = orjson.dumps({
            "segment_id": change.segment_id,
            "contact_id": change.contact_id,
            "member": True,
            "since": change.at.isoformat(),
            "segment_version": change.segment_version,
            "sequence": change.sequence,
        })
    return snapshot_id.encode(), value, partition_for(snapshot_id, partitions)
