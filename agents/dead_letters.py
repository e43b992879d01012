"""Dead-letter records, re-exported for the agents (they live in
``runtime.dead_letters``: the runtime's batch loop writes them too)."""

from runtime.dead_letters import dead_letter_record, describe_error

__all__ = ["dead_letter_record", "describe_error"]
