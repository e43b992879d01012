"""Which partition a key lands on: Kafka's default partitioner (murmur2 of
the key bytes), the one both aiokafka and the Java client use."""

from __future__ import annotations

from aiokafka.partitioner import murmur2

__all__ = ["one_key_per_partition", "partition_for"]


def partition_for(key: str, partitions: int) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def one_key_per_partition(prefix: str, partitions: int) -> list[tuple[int, str]]:
    """``(n, prefix + n)`` for the first key of ``prefix0, prefix1, …`` that
    lands on each partition, in the order found: markers and clock-sync
    inputs that reach every partition."""
    found: dict[int, tuple[int, str]] = {}
    n = 0
    while len(found) < partitions:
        key = f"{prefix}{n}"
        found.setdefault(partition_for(key, partitions), (n, key))
        n += 1
    return list(found.values())
