"""Who evaluates which partition, and who keeps a standby copy of it.

A group member tells the leader, in its join metadata, which partitions it
has a local copy of and up to which changelog offset (its checkpoint).
The leader (``plan_assignment``) then places:

- each partition's *active* task on a member with the freshest copy, within
  a balanced quota (counts differ by at most one), so a restart or a
  failover restores a changelog tail instead of the whole log;
- ``standby_replicas`` *standby* copies on the members that follow the
  owner in id order (never on the owner, balanced). A standby tails the
  partition's changelog (runtime/standby.py) so that taking the partition
  over costs a short tail. This is Kafka Streams' placement (task lags, standby tasks) on the
  classic consumer group protocol: the standby set travels in the
  assignment's ``user_data``.

``plan_assignment`` is pure; ``StandbyAssignor`` adapts it to aiokafka.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

__all__ = ["Placement", "StandbyAssignor", "plan_assignment"]

_NONE = -1  # the checkpoint of a partition a member has no copy of


@dataclass(slots=True)
class Placement:
    active: set[int] = field(default_factory=set)
    standby: set[int] = field(default_factory=set)


def plan_assignment(partitions: Sequence[int], warm: Mapping[str, Mapping[int, int]],
                    standby_replicas: int) -> dict[str, Placement]:
    """``warm``: member -> {partition: checkpoint of its local copy}.

    Deterministic for the same input (any member's leader computes the same).
    """
    members = sorted(warm)
    plan = {m: Placement() for m in members}
    if not members:
        return plan

    def copy(member: str, partition: int) -> int:
        return warm[member].get(partition, _NONE)

    # Partitions with the most state first: they get first pick of warm homes.
    order = sorted(partitions, key=lambda p: (-max(copy(m, p) for m in members), p))
    base, extra = divmod(len(order), len(members))
    # The quota base+1 goes to the members that hold the freshest copy of most partitions.
    best = {m: sum(1 for p in order if copy(m, p) > _NONE
                   and copy(m, p) == max(copy(o, p) for o in members)) for m in members}
    ranked = sorted(members, key=lambda m: (-best[m], m))
    quota = {m: base + (1 if i < extra else 0) for i, m in enumerate(ranked)}
    for p in order:
        open_ = [m for m in members if len(plan[m].active) < quota[m]]
        owner = max(open_, key=lambda m: (copy(m, p), quota[m] - len(plan[m].active),
                                          _reverse(m)))
        plan[owner].active.add(p)

    # Standby k of a partition: the k-th member after its owner in id order.
    # Each member then keeps as many copies per replica as its predecessor
    # evaluates (balanced because the actives are), and the copies follow
    # the actives when a group rejoins unchanged.
    replicas = min(standby_replicas, len(members) - 1)
    for index, member in enumerate(members):
        for k in range(1, replicas + 1):
            plan[members[(index + k) % len(members)]].standby |= plan[member].active
    return plan


def _reverse(member: str) -> tuple[int, ...]:
    """A key under which ``max`` prefers the smaller member id."""
    return tuple(-ord(c) for c in member)


class StandbyAssignor(AbstractPartitionAssignor):
    """aiokafka's assignor for the evaluator's group (one input topic).

    ``local_copies``: this member's {partition: checkpoint}, read when the
    member joins. After each join, ``standby`` holds the partitions this
    member keeps a standby copy of.
    """

    name = "segmentflow-standby"
    version = 0

    def __init__(self, topic: str, standby_replicas: int,
                 local_copies: Callable[[], Mapping[int, int]]) -> None:
        self.topic, self.standby_replicas = topic, standby_replicas
        self.local_copies = local_copies
        self.standby: set[int] = set()

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        copies = {str(p): c for p, c in self.local_copies().items()}
        return ConsumerProtocolMemberMetadata(self.version, sorted(topics),
                                              orjson.dumps({"copies": copies}))

    def assign(self, cluster: ClusterMetadata,
               members: Mapping[str, ConsumerProtocolMemberMetadata],
               ) -> dict[str, ConsumerProtocolMemberAssignment]:
        partitions = sorted(cluster.partitions_for_topic(self.topic) or ())
        warm = {member: _copies(meta.user_data) for member, meta in members.items()}
        plan = plan_assignment(partitions, warm, self.standby_replicas)
        return {member: ConsumerProtocolMemberAssignment(
                    self.version, [(self.topic, sorted(place.active))],
                    orjson.dumps({"standby": sorted(place.standby)}))
                for member, place in plan.items()}

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        try:
            self.standby = set(orjson.loads(assignment.user_data or b"{}").get("standby", []))
        except orjson.JSONDecodeError:
            self.standby = set()


def _copies(user_data: bytes | None) -> dict[int, int]:
    """A member's {partition: checkpoint}; nothing if it did not say (or garbled it)."""
    try:
        raw = orjson.loads(user_data or b"{}").get("copies", {})
        return {int(p): int(c) for p, c in raw.items()}
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return {}
