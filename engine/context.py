"""The evaluation context a compiled closure reads: one per apply() step."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.timeutil import local_ordinal

if TYPE_CHECKING:
    from engine.deps import FeatureSpec

__all__ = ["Ctx", "EventAt"]

_MISSING = object()


class Ctx:
    """Read-only view of one contact at one instant (plus lazy feature init)."""

    __slots__ = (
        "_owned",
        "_today",
        "account",
        "attrs",
        "consent",
        "features",
        "history",
        "members",
        "now",
        "owner",
    )

    def __init__(
        self,
        attrs: dict[str, Any],
        account: dict[str, Any],
        consent: dict[str, Any],
        members: dict[str, Any],
        history: dict[str, list[Any]],
        features: dict[str, Any],
        now: int,
        owner: Any = None,
    ) -> None:
        self.attrs = attrs
        self.account = account
        self.consent = consent
        self.members = members
        self.history = history
        self.features = features
        self.now = now
        self.owner = owner  # the ContactState whose features dict this is
        self._owned = False
        self._today: dict[str, int] = {}

    @property
    def contact_id(self) -> str | None:
        """The contact's id (None for the empty profile the catalog probes)."""
        owner = self.owner
        return owner.contact_id if owner is not None else None

    def today(self, tzname: str) -> int:
        """Local day ordinal of ``now`` in ``tzname`` (memoised per step)."""
        o = self._today.get(tzname)
        if o is None:
            o = self._today[tzname] = local_ordinal(self.now, tzname)
        return o

    def adopt(self, features: dict[str, Any], history: dict[str, list[Any]]) -> None:
        """Point at containers this step already owns (fresh copies)."""
        self.features = features
        self.history = history
        self._owned = True

    def own_features(self) -> dict[str, Any]:
        """The features dict, copied before its first write in this step (it
        is shared with the state ``apply`` was given)."""
        if not self._owned:
            self.features = dict(self.features)
            if self.owner is not None:
                self.owner.features = self.features
            self._owned = True
        return self.features

    def feature(self, spec: FeatureSpec) -> Any:
        """Current value of a running feature; a feature the contact has not
        tracked yet (segment added later) starts from the kept history."""
        v = self.features.get(spec.key, _MISSING)
        if v is _MISSING:
            v = spec.initial
            for t, _eid, props in self.history.get(spec.event_type, ()):
                v = spec.fold(v, t, props)
            self.own_features()[spec.key] = v
        return v


class EventAt(dict):  # type: ignore[type-arg]
    """One event's properties seen at instant ``now``: what a time-relative
    ``where`` clause (``where delivery_date within next 7 days``) evaluates
    on. Quacks like ``Ctx`` for the time-relative leaves (``now``, ``today``)."""

    __slots__ = ("now",)

    def __init__(self, props: dict[str, Any], now: int) -> None:
        super().__init__(props)
        self.now = now

    def today(self, tzname: str) -> int:
        return local_ordinal(self.now, tzname)
