"""Behavioural conditions (filled in below)."""
