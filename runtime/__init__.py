"""The runtime layer: partition-owned state, transactions, restore.

Broker-free and Faust-free (models <- engine <- runtime <- agents <- app).
"""

from runtime.keys import Keyspace
from runtime.memory import MemoryStore
from runtime.restore import apply_changelog
from runtime.store import PartitionStore, Store
from runtime.transaction import PartitionTransaction

__all__ = [
    "Keyspace",
    "MemoryStore",
    "PartitionStore",
    "PartitionTransaction",
    "Store",
    "apply_changelog",
]
