"""From-scratch expectations for replay tests: the naive reference evaluator
(tests/naive.py) over every input a contact received, at one final instant."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from models.inputs import AccountUpsert, ContactDelete, ContactUpsert, Interaction, StaticEdit
from models.segments import SegmentDefinition
from tests.naive import NaiveContact, naive_memberships


def feed(contact: NaiveContact, inp: Any) -> None:
    """Apply one input to the naive contact (merge/replace, account, events, static)."""
    if isinstance(inp, ContactUpsert):
        if inp.mode == "replace":
            contact.attrs = {}
        for key, value in inp.attributes.items():
            if value is None:
                contact.attrs.pop(key, None)
            else:
                contact.attrs[key] = value
        if "account_id" in inp.model_fields_set:
            contact.account_id = inp.account_id
    elif isinstance(inp, Interaction):
        contact.add_event(inp)
    elif isinstance(inp, StaticEdit):
        contact.static[inp.segment_id] = inp.op == "add"


def expected_members(
    inputs: Iterable[Any], definitions: list[SegmentDefinition], at: datetime
) -> dict[tuple[str, str], bool]:
    contacts: dict[str, NaiveContact] = {}
    accounts: dict[str, dict[str, Any]] = {}
    for inp in inputs:
        if isinstance(inp, AccountUpsert):
            merged = dict(accounts.get(inp.account_id, {})) if inp.mode == "merge" else {}
            merged.update(inp.attributes)
            accounts[inp.account_id] = {k: v for k, v in merged.items() if v is not None}
        elif isinstance(inp, ContactDelete):
            contacts.pop(inp.contact_id, None)
        else:
            contact = contacts.setdefault(inp.contact_id, NaiveContact(inp.contact_id))
            feed(contact, inp)
    # Referenced segments first, as naive_memberships requires.
    ordered = sorted(definitions, key=lambda d: d.kind == "compound")
    members: dict[tuple[str, str], bool] = {}
    for contact in contacts.values():
        for segment_id, member in naive_memberships(ordered, contact, accounts, at).items():
            if member:
                members[(segment_id, contact.contact_id)] = True
    return members
