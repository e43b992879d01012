"""The catalog: an immutable set of compiled segments plus the index that
says which segments an input can affect.

``put`` compiles one definition and refuses reference cycles. The index
(live segments only) is built lazily, once per catalog version, so deriving
a new catalog is O(segments) dict copying, not recompilation.

References to segments that are not in the catalog (or not live and never
evaluated for the contact) read as "not a member"; they are not an error,
because segments may be created in any order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from engine.compile import CompiledSegment, SegmentEval, compile_segment
from engine.context import Ctx
from engine.deps import EventFilter, FeatureSpec, HistoryNeed
from engine.errors import CycleError
from engine.limits import Limits
from models.segments import SegmentDefinition

__all__ = ["Catalog", "Index", "SegEntry", "closure"]


# What the hot loop needs per live segment, in one tuple:
# (rank, membership closure, version, ids of live segments referencing it)
SegEntry = tuple[int, SegmentEval, int, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Index:
    """Live segments only. Every ``by_*`` tuple lists ids in rank order."""

    live: dict[str, CompiledSegment]
    entries: dict[str, SegEntry]
    rank: dict[str, int]
    by_field: dict[str, tuple[str, ...]]
    by_account: tuple[str, ...]
    by_consent: tuple[str, ...]
    by_type: dict[str, tuple[str, ...]]
    dependents: dict[str, tuple[str, ...]]
    includes: dict[str, tuple[str, ...]]
    excludes: dict[str, tuple[str, ...]]
    empty_true: tuple[str, ...]
    #: what a brand-new contact must evaluate: ``empty_true``, the segments
    #: reading the contact id (``bucket(…)``) and every segment referencing
    #: one of them, transitively (their "empty" answers assumed memberships a
    #: new contact does not have stored yet)
    new_contact: tuple[str, ...]
    time_sensitive: frozenset[str]
    #: event type -> {segment: filter}: segments only some events of the type
    #: can affect (static ``where`` / absolute range on every use of the type)
    type_filters: dict[str, dict[str, EventFilter]]
    #: event type -> (segments routed whatever the event's properties,
    #: {property: {string: segments}}): a filtered segment whose every filter
    #: requires ``property = "string"`` is only routed an event carrying it
    #: (``_required``), so routing does not call every segment's filter
    type_routes: dict[str, tuple[frozenset[str], dict[str, dict[str, frozenset[str]]]]]
    features_by_type: dict[str, tuple[FeatureSpec, ...]]
    feature_keys: frozenset[str]
    history: dict[str, HistoryNeed]
    #: ``entries`` for a contact in the control group (``Limits.control_group``):
    #: every membership closure answers "not a member, never due"; ``entries``
    #: itself when there is no control group
    control_entries: dict[str, SegEntry]


class Catalog:
    __slots__ = ("__dict__", "_segs", "limits")

    def __init__(self, segs: dict[str, CompiledSegment], limits: Limits) -> None:
        self._segs = segs
        self.limits = limits

    @classmethod
    def empty(cls, limits: Limits | None = None) -> Catalog:
        return cls({}, limits or Limits())

    # -- derivation ---------------------------------------------------------

    def put(self, defn: SegmentDefinition) -> Catalog:
        """Compile ``defn`` and return a catalog holding it. Raises
        ``CompileError`` / ``CycleError``; ``self`` is unchanged either way."""
        compiled = compile_segment(defn, self.limits)
        segs = dict(self._segs)
        segs[defn.id] = compiled
        cycle = _find_cycle(defn.id, segs)
        if cycle:
            raise CycleError(cycle)
        return Catalog(segs, self.limits)

    def remove(self, segment_id: str) -> Catalog:
        if segment_id not in self._segs:
            return self
        segs = dict(self._segs)
        del segs[segment_id]
        return Catalog(segs, self.limits)

    # -- reading --------------------------------------------------------------

    def get(self, segment_id: str) -> SegmentDefinition | None:
        c = self._segs.get(segment_id)
        return c.defn if c is not None else None

    def compiled(self, segment_id: str) -> CompiledSegment | None:
        return self._segs.get(segment_id)

    def live_ids(self) -> list[str]:
        """Live segment ids in dependency order (referenced ones first)."""
        return list(self.index.live)

    def __len__(self) -> int:
        return len(self._segs)

    def __contains__(self, segment_id: object) -> bool:
        return segment_id in self._segs

    def __iter__(self) -> Iterator[str]:
        return iter(self._segs)

    @cached_property
    def index(self) -> Index:
        return _build_index(self._segs, self.limits.control_group is not None)


def _find_cycle(start: str, segs: dict[str, CompiledSegment]) -> list[str] | None:
    """A path start -> ... -> start through segment references, if any."""
    path: list[str] = [start]
    seen: set[str] = set()

    def dfs(node: str) -> bool:
        c = segs.get(node)
        if c is None:
            return False
        for ref in sorted(c.deps.segments):
            if ref == start:
                path.append(ref)
                return True
            if ref in seen:
                continue
            seen.add(ref)
            path.append(ref)
            if dfs(ref):
                return True
            path.pop()
        return False

    return path if dfs(start) else None


def _topo(segs: dict[str, CompiledSegment]) -> list[str]:
    order: list[str] = []
    state: dict[str, int] = {}
    for root in sorted(segs):
        if root in state:
            continue
        stack: list[tuple[str, list[str]]] = [(root, sorted(segs[root].deps.segments))]
        state[root] = 1
        while stack:
            node, refs = stack[-1]
            if refs:
                ref = refs.pop()
                if ref in segs and ref not in state:
                    state[ref] = 1
                    stack.append((ref, sorted(segs[ref].deps.segments)))
                continue
            stack.pop()
            state[node] = 2
            order.append(node)
    return order


def _build_index(segs: dict[str, CompiledSegment], control: bool = False) -> Index:
    order = _topo(segs)
    rank = {sid: i for i, sid in enumerate(order)}
    live = {sid: segs[sid] for sid in order if segs[sid].defn.status == "live"}
    by_field: dict[str, list[str]] = {}
    by_type: dict[str, list[str]] = {}
    dependents: dict[str, list[str]] = {}
    includes: dict[str, list[str]] = {}
    excludes: dict[str, list[str]] = {}
    by_account: list[str] = []
    by_consent: list[str] = []
    by_contact_id: list[str] = []
    time_sensitive: set[str] = set()
    feats: dict[str, dict[str, FeatureSpec]] = {}
    hist: dict[str, HistoryNeed] = {}
    type_filters: dict[str, dict[str, EventFilter]] = {}
    for sid, c in live.items():
        d = c.deps
        per_type: dict[str, list[EventFilter | None]] = {}
        for t, filt in d.event_filters:
            per_type.setdefault(t, []).append(filt)
        for t, fs in per_type.items():
            kept = [x for x in fs if x is not None]
            if len(kept) == len(fs):
                type_filters.setdefault(t, {})[sid] = _any_of(kept)
        for f in d.fields:
            by_field.setdefault(f, []).append(sid)
        for t in d.event_types:
            by_type.setdefault(t, []).append(sid)
        for ref in d.segments:
            dependents.setdefault(ref, []).append(sid)
        for cid in c.include:
            includes.setdefault(cid, []).append(sid)
        for cid in c.exclude:
            excludes.setdefault(cid, []).append(sid)
        if d.account:
            by_account.append(sid)
        if d.consent:
            by_consent.append(sid)
        if d.contact_id:
            by_contact_id.append(sid)
        if d.time:
            time_sensitive.add(sid)
        for spec in d.features:
            feats.setdefault(spec.event_type, {})[spec.key] = spec
        for t, need in d.history:
            old = hist.get(t)
            if old is None:
                hist[t] = need
            else:
                lookback = max(old.lookback_us, need.lookback_us)
                hist[t] = HistoryNeed(lookback, old.props | need.props)
    empty_true = _empty_true(live)
    dep_t = {k: tuple(v) for k, v in dependents.items()}
    entries = {
        sid: (rank[sid], c.evaluate, c.version, dep_t.get(sid, ())) for sid, c in live.items()
    }
    control_entries = (
        {sid: (r, _never, v, deps) for sid, (r, _fn, v, deps) in entries.items()}
        if control else entries)
    return Index(
        live=live,
        entries=entries,
        rank=rank,
        by_field={k: tuple(v) for k, v in by_field.items()},
        by_account=tuple(by_account),
        by_consent=tuple(by_consent),
        by_type={k: tuple(v) for k, v in by_type.items()},
        dependents=dep_t,
        includes={k: tuple(v) for k, v in includes.items()},
        excludes={k: tuple(v) for k, v in excludes.items()},
        empty_true=empty_true,
        new_contact=closure((*empty_true, *by_contact_id), dep_t, rank),
        time_sensitive=frozenset(time_sensitive),
        type_filters=type_filters,
        type_routes=_type_routes(type_filters, by_type),
        features_by_type={k: tuple(v.values()) for k, v in feats.items()},
        feature_keys=frozenset(k for v in feats.values() for k in v),
        history=hist,
        control_entries=control_entries,
    )


def _never(ctx: Ctx, cid: str, static: object) -> tuple[bool, None]:
    return False, None


def closure(
    seeds: tuple[str, ...], dependents: dict[str, tuple[str, ...]], rank: dict[str, int]
) -> tuple[str, ...]:
    """``seeds`` plus every live segment referencing one of them, transitively,
    in rank order."""
    out = set(seeds)
    todo = list(seeds)
    while todo:
        for dep in dependents.get(todo.pop(), ()):
            if dep not in out:
                out.add(dep)
                todo.append(dep)
    return tuple(sorted(out, key=rank.__getitem__))


def _any_of(fs: list[EventFilter]) -> EventFilter:
    if len(fs) == 1:
        return fs[0]
    f: Any = lambda t, props: any(f(t, props) for f in fs)  # noqa: E731
    required = {_required(x) for x in fs}
    f.required = required.pop() if len(required) == 1 else None
    return f  # type: ignore[no-any-return]


def _required(f: EventFilter) -> tuple[str, str] | None:
    """``(property, string)`` every event passing ``f`` carries, if known."""
    return getattr(f, "required", None)


def _type_routes(
    type_filters: dict[str, dict[str, EventFilter]], by_type: dict[str, list[str]]
) -> dict[str, tuple[frozenset[str], dict[str, dict[str, frozenset[str]]]]]:
    routes: dict[str, tuple[frozenset[str], dict[str, dict[str, frozenset[str]]]]] = {}
    for etype, filters in type_filters.items():
        by_value: dict[str, dict[str, set[str]]] = {}
        for sid, f in filters.items():
            required = _required(f)
            if required is not None:
                by_value.setdefault(required[0], {}).setdefault(required[1], set()).add(sid)
        if not by_value:
            continue
        routed = {sid for values in by_value.values() for sids in values.values() for sid in sids}
        routes[etype] = (frozenset(by_type.get(etype, ())) - routed,
                         {prop: {v: frozenset(sids) for v, sids in values.items()}
                          for prop, values in by_value.items()})
    return routes


def _empty_true(live: dict[str, CompiledSegment]) -> tuple[str, ...]:
    """Live segments a brand-new contact with nothing known belongs to
    (``not exists x``, ``not performed …``). That answer cannot depend on the
    clock: every time-relative test on a missing value is false."""
    members: dict[str, int] = {}
    ctx = Ctx({}, {}, {}, members, {}, {}, 0)
    out: list[str] = []
    for sid, c in live.items():
        if c.cond is not None and c.cond.ev(ctx):
            members[sid] = 1
            out.append(sid)
    return tuple(out)
