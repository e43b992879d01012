"""Per-contact state, compact (orjson) for RocksDB tables.

Everything is plain JSON-able data so ``from_bytes(to_bytes(s)) == s``:
- ``consent``: the first form's flags (``"email": true``) and consent
  records (``"channel/purpose/topic": [given, at_us]``, topic empty for the
  whole channel; engine/nodes/consent.py) in one map;
- ``members``: segment id -> ``sequence | version << 32``: the sequence of the
  last change for that pair (odd means member: the
  ``MembershipChange.sequence`` parity rule) and the segment version it
  carried, packed in one int. Entries stay after leaving and after a segment
  is deleted so sequences never restart;
- ``history``: event type -> ``[(occurred_at_us, event_id, props), ...]`` in
  time order, only types/properties live segments need, bounded;
- ``seen``: recent event ids (dedup);
- ``features``: running aggregates (ever / absolute-range windows) by key;
- ``static``: explicit add (True) / remove (False) per segment;
- ``due``: segment id -> next instant (us) its value could flip by time alone.

Dicts of ids to ints are untracked by Python's cyclic GC, which matters
when a worker holds many states.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from engine.timeutil import from_us

__all__ = ["SEQ_MASK", "ContactState"]

SEQ_MASK = 0xFFFFFFFF  # low 32 bits of a ``members`` value: the sequence
_new = object.__new__


class ContactState:
    __slots__ = (
        "_min_due",
        "account_id",
        "attrs",
        "consent",
        "contact_id",
        "due",
        "features",
        "history",
        "members",
        "seen",
        "static",
    )

    def __init__(
        self,
        contact_id: str,
        attrs: dict[str, Any] | None = None,
        account_id: str | None = None,
        consent: dict[str, Any] | None = None,
        history: dict[str, list[list[Any]]] | None = None,
        seen: Sequence[str] | None = None,
        features: dict[str, Any] | None = None,
        members: dict[str, int] | None = None,
        static: dict[str, bool] | None = None,
        due: dict[str, int] | None = None,
    ) -> None:
        self.contact_id = contact_id
        self.attrs: dict[str, Any] = attrs if attrs is not None else {}
        self.account_id = account_id
        self.consent: dict[str, Any] = consent if consent is not None else {}
        self.history: dict[str, list[list[Any]]] = history if history is not None else {}
        self.seen: Sequence[str] = seen if seen is not None else ()
        self.features: dict[str, Any] = features if features is not None else {}
        self.members: dict[str, int] = members if members is not None else {}
        self.static: dict[str, bool] = static if static is not None else {}
        self.due: dict[str, int] = due if due is not None else {}
        self._min_due: int | bool | None = False  # False: not computed yet

    # -- derived views ------------------------------------------------------

    def next_due_us(self) -> int | None:
        m = self._min_due
        if m is False:
            m = self._min_due = min(self.due.values()) if self.due else None
        return m  # type: ignore[return-value]

    def due_changed(self) -> None:
        self._min_due = False

    @property
    def next_due(self) -> datetime | None:
        """Earliest instant a membership could change without new input."""
        m = self.next_due_us()
        return from_us(m) if m is not None else None

    def memberships(self) -> dict[str, bool]:
        """Segments this contact is currently a member of."""
        return {sid: True for sid, seq in self.members.items() if seq & 1}

    def membership(self, segment_id: str) -> tuple[bool, int, int] | None:
        """(member, sequence of the last change, segment version of it), or
        None if the contact never joined that segment."""
        packed = self.members.get(segment_id)
        if packed is None:
            return None
        seq = packed & SEQ_MASK
        return bool(seq & 1), seq, packed >> 32

    def is_member(self, segment_id: str) -> bool:
        return bool(self.members.get(segment_id, 0) & 1)

    # -- copying / storage ----------------------------------------------------

    def clone(self) -> ContactState:
        """A new state sharing this one's containers except ``static``.
        ``apply`` replaces ``attrs``/``consent``/``seen``/``history`` and copies
        ``members``/``due``/``features`` before its first write, so the input
        state never changes."""
        c = ContactState(
            self.contact_id,
            self.attrs,
            self.account_id,
            self.consent,
            self.history,
            self.seen,
            self.features,
            self.members,
            dict(self.static) if self.static else {},
            self.due,
        )
        c._min_due = self._min_due
        return c

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"c": self.contact_id}
        for key, val in (
            ("a", self.attrs),
            ("ac", self.account_id),
            ("cs", self.consent),
            ("h", self.history),
            ("s", self.seen),
            ("f", self.features),
            ("m", self.members),
            ("x", self.static),
            ("d", self.due),
        ):
            if val:
                d[key] = val
        return d

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_bytes(cls, raw: bytes) -> ContactState:
        # As __init__, without its call: a go-live scan decodes every
        # stored contact (to_dict leaves out empty containers).
        d = orjson.loads(raw)
        get = d.get
        st = _new(cls)
        st.contact_id = d["c"]
        st.attrs = get("a") or {}
        st.account_id = get("ac")
        st.consent = get("cs") or {}
        st.history = get("h") or {}
        st.seen = get("s") or ()
        st.features = get("f") or {}
        st.members = get("m") or {}
        st.static = get("x") or {}
        st.due = get("d") or {}
        st._min_due = False
        return st

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ContactState):
            return NotImplemented
        return orjson.loads(self.to_bytes()) == orjson.loads(other.to_bytes())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ContactState({self.to_dict()!r})"
