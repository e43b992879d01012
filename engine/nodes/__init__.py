"""Node compilers; importing this package registers all of them."""

from engine.nodes import behaviour, logic, profile, segments, split, temporal

__all__ = ["behaviour", "logic", "profile", "segments", "split", "temporal"]
