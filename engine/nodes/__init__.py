"""Node compilers; importing this package registers all of them."""

from engine.nodes import behaviour, consent, logic, profile, segments, split, temporal

__all__ = ["behaviour", "consent", "logic", "profile", "segments", "split", "temporal"]
