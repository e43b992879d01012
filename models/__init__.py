"""Pydantic contracts: inputs, segment definitions, conditions, changes.

No Faust or Kafka here: these models are shared by the pure engine, the
agents and the API.
"""
