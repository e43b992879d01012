"""Kafka's default partitioner, re-exported for the agents (it lives in
``runtime.partitioning``: the runtime needs it and must not import agents)."""

from runtime.partitioning import one_key_per_partition, partition_for

__all__ = ["one_key_per_partition", "partition_for"]
