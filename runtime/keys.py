"""One key encoding and one order for everything the runtime stores.

A stored key is ``keyspace id (1 byte) + key bytes``. Byte order
(``bytes.__lt__``, RocksDB's default comparator) is the ONLY order used
anywhere: store scans, the transaction's overlay merge, restore, backfill
cursors. Nothing sorts keys as ``str`` or decodes them to compare: that is
the bug class of issue #12 item 6 (an overlay merged in str order while the
scan ran in byte order skipped contacts).

Layouts inside a keyspace:

- ``CONTACTS``: ``contact_id`` (UTF-8).
- ``ARCHIVE``: ``contact_id + b"\\x00" + time (8 bytes, µs) + event_id``
  (UTF-8), so a prefix scan by contact returns its events in time order, and
  the same event (time and id) stored twice is one key. Contact ids never
  contain ``\\x00`` (refused here), so one contact's prefix never matches
  another contact's keys, and contacts sort in the same order here as in
  ``CONTACTS`` (``\\x00`` is the smallest byte): one range scan serves a
  chunk of contacts.
- ``DUE``: ``time (8 bytes, µs) + contact_id``: a range scan up to "now"
  wakes the due contacts in time order.
- ``SEGMENTS``: ``segment_id``: the definition (JSON), replicated into every
  partition by broadcast commands so each partition replays on its own.
- ``ACCOUNTS``: ``account_id``: the account's attributes (JSON), replicated
  likewise.
- ``ACCOUNT_CONTACTS``: ``account_id + b"\\x00" + contact_id``: which of this
  partition's contacts belong to an account (prefix scan by account).
- ``BACKFILLS``: ``segment_id``: progress of re-evaluating the partition's
  contacts for a new, changed or deleted segment.
- ``META``: partition metadata (the event clock), through the changelog.
- ``LOCAL``: never in a transaction nor the changelog (the checkpoint).

Times are signed epoch microseconds with the sign bit flipped, so
negative times also sort before positive ones.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "CHECKPOINT_KEY",
    "Keyspace",
    "account_contact_key",
    "account_contact_prefix",
    "archive_key",
    "archive_prefix",
    "contact_key",
    "decode_archive_key",
    "decode_due_key",
    "decode_offset",
    "decode_time",
    "due_key",
    "encode_offset",
    "encode_time",
    "keyspace_bounds",
    "prefix_upper_bound",
    "split_key",
    "stored_key",
]

_TIME_BIAS = 1 << 63


class Keyspace(IntEnum):
    """The first byte of every stored key."""

    LOCAL = 0
    META = 1
    CONTACTS = 2
    ARCHIVE = 3
    DUE = 4
    SEGMENTS = 5
    ACCOUNTS = 6
    ACCOUNT_CONTACTS = 7
    BACKFILLS = 8


CHECKPOINT_KEY = bytes([Keyspace.LOCAL]) + b"changelog-offset"


def stored_key(keyspace: Keyspace, key: bytes) -> bytes:
    """The stored key: keyspace byte, then the key's own bytes."""
    return bytes((keyspace,)) + key


def split_key(stored: bytes) -> tuple[Keyspace, bytes]:
    """Inverse of :func:`stored_key`."""
    if not stored:
        raise ValueError("empty stored key")
    return Keyspace(stored[0]), stored[1:]


def prefix_upper_bound(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix``.

    ``None`` when there is none (the prefix is empty or all ``0xff``).
    """
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes((trimmed[-1] + 1,))


def keyspace_bounds(keyspace: Keyspace) -> tuple[bytes, bytes | None]:
    """``[lower, upper)`` of a whole keyspace in stored-key bytes."""
    lower = bytes((keyspace,))
    return lower, prefix_upper_bound(lower)


def encode_time(time_us: int) -> bytes:
    """A signed time as 8 bytes whose byte order is numeric order."""
    return (time_us + _TIME_BIAS).to_bytes(8, "big")


def decode_time(data: bytes) -> int:
    """Inverse of :func:`encode_time`."""
    return int.from_bytes(data, "big") - _TIME_BIAS


def _contact_bytes(contact_id: str) -> bytes:
    raw = contact_id.encode("utf-8")
    if not raw or b"\x00" in raw:
        raise ValueError(f"contact id must be non-empty without NUL: {contact_id!r}")
    return raw


def contact_key(contact_id: str) -> bytes:
    """Key of a contact's state in ``CONTACTS``."""
    return _contact_bytes(contact_id)


def archive_prefix(contact_id: str) -> bytes:
    """Prefix of all of one contact's ``ARCHIVE`` keys."""
    return _contact_bytes(contact_id) + b"\x00"


def archive_key(contact_id: str, time_us: int, event_id: str = "") -> bytes:
    """Key of one archived interaction; byte order = (contact, time, event id)."""
    return archive_prefix(contact_id) + encode_time(time_us) + event_id.encode("utf-8")


def decode_archive_key(key: bytes) -> tuple[str, int, str]:
    """``(contact_id, time_us, event_id)`` of an ``ARCHIVE`` key."""
    end = key.find(b"\x00")
    if end < 1 or len(key) < end + 9:
        raise ValueError(f"not an archive key: {key!r}")
    return (key[:end].decode("utf-8"), decode_time(key[end + 1:end + 9]),
            key[end + 9:].decode("utf-8"))


def due_key(due_us: int, contact_id: str) -> bytes:
    """Key of a due entry in ``DUE``; byte order = (time, contact). Times in
    microseconds, the engine's unit: a rounded due time would wake a contact
    before its window actually moves."""
    return encode_time(due_us) + _contact_bytes(contact_id)


def decode_due_key(key: bytes) -> tuple[int, str]:
    """``(due_us, contact_id)`` of a ``DUE`` key."""
    if len(key) < 9:
        raise ValueError(f"not a due key: {key!r}")
    return decode_time(key[:8]), key[8:].decode("utf-8")


def account_contact_prefix(account_id: str) -> bytes:
    """Prefix of an account's ``ACCOUNT_CONTACTS`` keys."""
    return _contact_bytes(account_id) + b"\x00"


def account_contact_key(account_id: str, contact_id: str) -> bytes:
    """Key of one (account, contact) pair in ``ACCOUNT_CONTACTS``."""
    return account_contact_prefix(account_id) + _contact_bytes(contact_id)


def encode_offset(offset: int) -> bytes:
    """A changelog offset as stored under :data:`CHECKPOINT_KEY`."""
    return offset.to_bytes(8, "big", signed=True)


def decode_offset(data: bytes) -> int:
    """Inverse of :func:`encode_offset`."""
    return int.from_bytes(data, "big", signed=True)
