"""Which partition a key lands on: Kafka's default partitioner (murmur2 of
the key bytes), the one both aiokafka and the Java client use."""

from __future__ import annotations

from aiokafka.partitioner import murmur2

__all__ = ["partition_for"]


def partition_for(key: str, partitions: int) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
