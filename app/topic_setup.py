"""Create every topic the worker uses, with its partitions and cleanup
policy, when the worker starts — not when a record first goes out.

Faust declares the topics its agents consume and its changelogs, but not
output-only topics; those would be auto-created by the broker with broker
defaults on the first send (one partition, and ``delete`` instead of
``compact`` for the memberships snapshot). Readiness waits for this.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING

import faust

if TYPE_CHECKING:
    from app.faust_app import Topics

__all__ = ["register_topic_setup", "topics_ready"]

_READY: dict[int, bool] = {}


def topics_ready(app: faust.App) -> bool:
    return _READY.get(id(app), False)


def register_topic_setup(app: faust.App, topics: Topics) -> None:
    _READY[id(app)] = False

    @app.task
    async def declare_topics() -> None:
        for field in fields(topics):
            await getattr(topics, field.name).maybe_declare()
        _READY[id(app)] = True
