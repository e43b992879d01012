"""The HTTP API (Faust web): one module per resource group.

- ``ops``: health, readiness, ``/metrics``, ``/openapi.json``, ``/asyncapi.json|yaml``
- ``segments``: segments, activate/stop, status, members, static edits, flow
- ``contacts``: a contact's segments, explain, draft preview
- ``errors`` / ``guard``: the JSON error format, auth, body limits
- ``writes``: what API writes produce to Kafka
"""
