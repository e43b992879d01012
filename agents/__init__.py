"""Faust agents: thin adapters that decode, call the pure engine, and send."""
