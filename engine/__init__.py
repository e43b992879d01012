"""segmentflow's pure evaluation core.

``(contact state, input, catalog, now, accounts) -> (new state, membership
changes, next due time)``. No Faust, Kafka or I/O here, and no system clock:
``now`` is always passed in.
"""

from engine.apply import apply
from engine.catalog import Catalog
from engine.commands import AccountChanged, SegmentChanged, Tick, Transition
from engine.definition_probe import definition_probe, unchanged_by_definition
from engine.errors import CompileError, CycleError
from engine.explain import explain
from engine.history import ArchivedEvent, Rebuild, is_duplicate, rebuild_history, rebuild_needs
from engine.limits import Limits
from engine.state import ContactState

__all__ = [
    "AccountChanged",
    "ArchivedEvent",
    "Catalog",
    "CompileError",
    "ContactState",
    "CycleError",
    "Limits",
    "Rebuild",
    "SegmentChanged",
    "Tick",
    "Transition",
    "apply",
    "definition_probe",
    "explain",
    "is_duplicate",
    "rebuild_history",
    "rebuild_needs",
    "unchanged_by_definition",
]
