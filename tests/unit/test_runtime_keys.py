"""runtime.keys: byte order of encoded keys is the order scans need."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.keys import (
    Keyspace,
    archive_key,
    archive_prefix,
    decode_archive_key,
    decode_due_key,
    decode_time,
    due_key,
    encode_time,
    prefix_upper_bound,
    split_key,
    stored_key,
)

times = st.integers(min_value=-(2**63), max_value=2**63 - 1)
seqs = st.text(max_size=6)  # event ids (any text, NUL included)
contacts = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=8,
)


@given(st.lists(st.tuples(contacts, times, seqs), max_size=30))
def test_archive_keys_sort_by_contact_then_time_then_event_id(entries: list) -> None:
    encoded = sorted(archive_key(c, t, s) for c, t, s in entries)
    decoded = [decode_archive_key(k) for k in encoded]
    for contact in {c for c, _, _ in entries}:
        mine = [(t, s) for c, t, s in decoded if c == contact]
        assert [t for t, _ in mine] == sorted(t for t, _ in mine)
        assert sorted((c, t, s) for c, t, s in entries if c == contact) == sorted(
            (contact, t, s) for t, s in mine)  # round trip
        # a contact's prefix selects exactly its own keys
        prefix = archive_prefix(contact)
        assert [k for k in encoded if k.startswith(prefix)] == [
            archive_key(contact, t, s) for t, s in mine
        ]


@given(times, times)
def test_time_encoding_keeps_numeric_order(a: int, b: int) -> None:
    assert (encode_time(a) < encode_time(b)) == (a < b)
    assert decode_time(encode_time(a)) == a


@given(times, contacts)
def test_due_key_round_trip(due: int, contact: str) -> None:
    assert decode_due_key(due_key(due, contact)) == (due, contact)


@given(st.binary(max_size=4), st.binary(max_size=6))
def test_prefix_upper_bound_is_the_first_key_after_the_prefix(prefix: bytes, key: bytes) -> None:
    upper = prefix_upper_bound(prefix)
    if key.startswith(prefix):
        assert upper is None or key < upper
    elif upper is not None:
        assert key < prefix or key >= upper


def test_keys_refuse_nul_and_split() -> None:
    with pytest.raises(ValueError):
        archive_key("a\x00b", 0)
    assert split_key(stored_key(Keyspace.DUE, b"x")) == (Keyspace.DUE, b"x")
