"""Service settings, read from environment variables (prefix ``SEGMENTFLOW_``).

Each default says why it is the default. ``KAFKA_BOOTSTRAP_SERVERS`` is read
without the prefix because every Kafka tool and script here honours it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.buckets import ControlGroup
from engine.limits import Limits

__all__ = ["Settings", "TopicNames", "secret_value"]


def secret_value(value: SecretStr | str | None) -> str | None:
    """The plain text of a token setting (tests may assign a plain str)."""
    return value.get_secret_value() if isinstance(value, SecretStr) else value


class TopicNames:
    """Topic names derived from one prefix, so deployments (and tests) that
    use different prefixes never see each other's data."""

    def __init__(self, prefix: str, upstream: dict[str, str | None] | None = None) -> None:
        # Upstream topics may carry names of their own (another team's
        # topics); segmentflow's own topics always follow the prefix.
        names = {k: v for k, v in (upstream or {}).items() if v}
        self.contacts = names.get("contacts", f"{prefix}.contacts")
        self.accounts = names.get("accounts", f"{prefix}.accounts")
        self.interactions = names.get("interactions", f"{prefix}.interactions")
        self.segment_definitions = names.get(
            "segment_definitions", f"{prefix}.segment-definitions")
        self.static_edits = names.get("static_edits", f"{prefix}.static-edits")
        # The one ordered log per partition that the evaluator consumes.
        self.evaluator_input = f"{prefix}.evaluator-input"
        self.membership_changes = f"{prefix}.membership-changes"
        self.memberships = f"{prefix}.memberships"
        self.dead_letters = f"{prefix}.dead-letters"
        # The batch evaluator's state changelog (SEGMENTFLOW_EVALUATOR=batch).
        self.evaluator_state = f"{prefix}.evaluator-state"
        # Event-type declarations (compacted, one partition; docs/event-types.md).
        self.event_types = f"{prefix}.event-types"


class Settings(BaseSettings):
    # populate_by_name: Settings(bootstrap_servers=...) must win over the
    # environment (tests and the demo point workers at their own broker).
    model_config = SettingsConfigDict(
        env_prefix="SEGMENTFLOW_", extra="ignore", populate_by_name=True
    )

    # The local broker started by deploy/kafka/kafka.sh listens here.
    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "SEGMENTFLOW_BOOTSTRAP_SERVERS"),
    )
    # Prefix of every topic and the Faust app id (consumer group, changelogs).
    topic_prefix: str = "segmentflow"
    # Upstream topic names, when they are not "<prefix>.contacts" etc.
    contacts_topic: str | None = None
    accounts_topic: str | None = None
    interactions_topic: str | None = None
    segment_definitions_topic: str | None = None
    static_edits_topic: str | None = None
    # Partitions of internal topics and tables: the unit of parallelism.
    # 8 is Faust's default and lets up to 8 workers share the load.
    partitions: int = Field(default=8, ge=1)
    # One RocksDB directory per worker; two workers on one directory collide.
    data_dir: Path = Path("data")
    web_host: str = "127.0.0.1"
    # Faust's own default web port; tests give each worker its own.
    web_port: int = 6066
    # at_least_once + per-(segment, contact) sequence numbers is the contract
    # proven by the crash tests; exactly_once is Faust-experimental.
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    log_level: str = "info"
    # Bad input larger than this is dead-lettered as a preview, not whole.
    dead_letter_max_bytes: int = 65536
    # Largest record ingest forwards (bytes): the input inside its envelope
    # for the evaluator's log; larger inputs are dead-lettered (unparsed when
    # the input alone is larger). 1,000,000 leaves room for the envelope,
    # key, headers and batch overhead under the default producer
    # max_request_size (1,048,576) and broker message.max.bytes (1,048,588);
    # raise those too before raising this.
    max_input_bytes: int = 1_000_000
    # A contact's encoded state is one changelog record: it must fit the same
    # limits. An input that would grow a state past this is dead-lettered
    # (the state and memberships stay as they were) instead of failing the
    # changelog write, which would stop the worker on every replay.
    # 900,000: the changelog record adds the key and record overhead, and
    # Faust's producer refuses records over its max_request_size, 1,000,000.
    max_contact_state_bytes: int = Field(default=900_000, ge=10_000)
    # Interactions are retained (whole) this many days, so a segment defined
    # or changed later is evaluated over them (docs/history.md).
    history_retention_days: int = Field(default=400, ge=1, le=3650)
    # Decoded contact states the evaluator keeps across batches (the whole
    # worker, shared by its partitions), counted in bytes of their encoding.
    # A contact found there is neither read from RocksDB nor decoded: CPU
    # saved vs worker RSS, ~25 MB of RSS per MiB here (bench/memory_bench.py).
    state_cache_bytes: int = Field(default=2 * 1024 * 1024, ge=0)
    # "batch": ingest is one aiokafka batch loop over the upstream topics
    # (group <prefix>-ingest); "faust": one Faust agent per upstream topic.
    ingest: Literal["faust", "batch"] = "batch"
    # What this process runs. "all": ingest, evaluator and API in one
    # process. "ingest": only ingest (stateless, scales on its own; serves
    # /health, /ready, /metrics). "evaluator": evaluator and API, no ingest.
    # Apart, ingest runs on another core than the evaluator
    # (docs/architecture.md, "Roles").
    role: Literal["all", "ingest", "evaluator"] = "all"
    # Batch evaluator: how often input offsets of settled batches are
    # committed (Kafka Streams' commit.interval.ms).
    commit_interval: float = Field(default=0.1, gt=0)
    # Batch evaluator: standby copies of each partition kept current on
    # other workers (Kafka Streams' num.standby.replicas), so a failover
    # restores a changelog tail instead of the whole log. 0 = off.
    standby_replicas: int = Field(default=0, ge=0, le=3)
    # A worker that stops heartbeating loses its partitions after this long
    # (consumer group session.timeout.ms of the evaluator and ingest groups):
    # most of a failover's time. Kafka refuses less than its
    # group.min.session.timeout.ms (6 s by default).
    session_timeout_ms: int = Field(default=10_000, ge=6_000, le=300_000)
    # "wall": now is the wall clock. "event": now follows the latest event
    # time seen, for deterministic replays, backfills and demos.
    clock: Literal["wall", "event"] = "wall"
    # Contacts re-evaluated per backfill chunk before yielding to live
    # traffic (a go-live on a big partition is many chunks).
    backfill_chunk: int = Field(default=2000, ge=1)
    # The evaluator handles inputs in batches of at most this many, waiting at
    # most batch_within seconds to fill one: one broker round trip then
    # confirms a whole batch's outputs (latency cost: up to batch_within).
    batch_max: int = Field(default=500, ge=1)
    batch_within: float = Field(default=0.005, gt=0)
    # Producer batching: outputs of a batch leave in a few requests instead
    # of one per message (which made socket writes a third of the CPU).
    producer_linger_ms: int = Field(default=5, ge=0)
    # Per-contact bounds of the engine (engine.Limits). Duplicate
    # interactions are recognised by event_id among the contact's last
    # dedup_event_ids events: the de-duplication horizon.
    dedup_event_ids: int = Field(default=128, ge=1)
    # Newest events kept per interaction type that live segments use.
    max_events_per_type: int = Field(default=256, ge=1)
    # Per-type exceptions, "type=N,type=N" (e.g. "page_visited=2000,purchase=64"):
    # what a contact keeps of that type for relative windows (the archive
    # keeps everything within the retention). Every worker needs the same.
    max_events_by_type: str = ""
    # Distinct values tracked by a running count-distinct / most-frequent.
    max_distinct_values: int = Field(default=1000, ge=1)
    # Global control group, "seed:percent" (e.g. "holdout-2026:5"): contacts
    # whose bucket("seed") is below percent x 100 belong to no segment
    # (engine/buckets.py, docs/segments.md). Unset by default: a holdout is a
    # decision of whoever runs the journeys, never something to fall into.
    # Every worker must have the same value.
    control_group: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_removed_evaluator(cls, data: Any) -> Any:
        """SEGMENTFLOW_EVALUATOR is gone with the Faust evaluator: "batch"
        (the only evaluator) is accepted and ignored; anything else stops
        the worker here rather than silently running another evaluator over
        state it never wrote."""
        given = data.get("evaluator") if isinstance(data, dict) else None
        given = given or os.environ.get("SEGMENTFLOW_EVALUATOR")
        if given is not None and str(given).strip().lower() not in ("", "batch"):
            raise ValueError(
                f"SEGMENTFLOW_EVALUATOR={given}: the Faust evaluator was removed (issue #12); "
                "the batch evaluator is the only one. Unset SEGMENTFLOW_EVALUATOR; the batch "
                "evaluator does not read the Faust evaluator's tables, it keeps its own state "
                "(consumer group <prefix>-evaluator, docs/architecture.md)")
        return data

    @field_validator("max_events_by_type")
    @classmethod
    def _check_events_by_type(cls, value: str) -> str:
        Settings.events_by_type(Settings.model_construct(max_events_by_type=value))
        return value

    @field_validator("control_group")
    @classmethod
    def _check_control_group(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            ControlGroup.parse(value)  # ValueError names the expected form
            return value.strip()
        return None

    # Interactions of an event type that is not declared (docs/event-types.md)
    # are dead-lettered, so a misspelt type never silently matches nothing;
    # true accepts them anyway (declared types are still checked).
    accept_undeclared_event_types: bool = False

    # Due contacts woken per batch per partition (the rest wait for the next).
    due_batch: int = Field(default=20000, ge=1)

    # RocksDB memory of the evaluator's partition stores (runtime/store.py):
    # one block cache for all of them, each partition's memtables within one
    # budget of 4 write buffers for all of them. Bounded, so RSS plateaus
    # under steady load (docs/architecture.md "Memory").
    rocksdb_write_buffer_bytes: int = Field(default=4 * 2**20, ge=2**20)
    rocksdb_block_cache_bytes: int = Field(default=8 * 2**20, ge=2**20)

    # HTTP API. Writes need "Authorization: Bearer <api_token>"; with no
    # token configured they are refused (401), unless api_open_writes is set
    # explicitly (local demos only). api_token also grants reads.
    api_token: SecretStr | None = None
    api_open_writes: bool = False
    # Reads (segments, members, contacts, explain, preview) name contacts:
    # personal data. Once any token is configured they need api_read_token
    # or api_token; with no token at all they stay open (local demos).
    api_read_token: SecretStr | None = None
    # true: reads need no token even when tokens are configured (opt-out).
    api_open_reads: bool = False
    # Request bodies larger than this are refused (413) unread; a definition
    # record stays far below the broker's 1 MB message limit.
    api_max_body_bytes: int = Field(default=262_144, ge=1)
    # Parsing, validating and previewing request definitions is heavy: it
    # runs in api_workers worker processes (off the evaluator's event loop;
    # threads would share its GIL), at most api_max_concurrent requests at a
    # time (more: 503 + Retry-After), each within api_work_timeout seconds.
    api_workers: int = Field(default=1, ge=1)
    api_max_concurrent: int = Field(default=2, ge=1)
    api_work_timeout: float = Field(default=5.0, gt=0)
    # A preview scans every contact (on the event loop, in chunks): at most
    # this many seconds, then 503.
    api_preview_timeout: float = Field(default=30.0, gt=0)
    # Definition writes (create/update/activate/stop) one worker's API
    # accepts, charged by formula length (at least 256 characters; see
    # app/api/budget.py): beyond, 503 + Retry-After (the CLI retries). Every
    # partition validates, compiles and backfills each accepted definition on
    # its event loop. Measured in the stall test: maximal definitions at 2/s
    # kept inputs under 0.85 s late, at ~3.5/s up to 1.2 s.
    api_definition_chars_per_second: int = Field(default=16_384, ge=8_192)
    # Segment sizes on /metrics come from a scan of the contacts; at most
    # one scan per this many seconds, whatever the scrape rate.
    metrics_sizes_ttl: float = Field(default=10.0, ge=0)
    # Per-segment series on /metrics (segment ids as label values); off by
    # default because /metrics is open. Dashboards that chart per segment
    # (deploy/grafana) need it on.
    metrics_segment_labels: bool = False
    # Insights (docs/insights.md): hours of the per-segment series older
    # than this (counted from the newest hour seen) are pruned; issue #15
    # asks for at least 90 days at hourly resolution.
    insights_retention_days: int = Field(default=90, ge=1)
    # How membership changes are written (docs/cloudevents.md): "native"
    # (the change's JSON; the default, what existing consumers read),
    # "cloudevents-binary" (CloudEvents 1.0 Kafka binding, ce_* headers, the
    # value still the change's JSON) or "cloudevents-structured" (the whole
    # CloudEvent as JSON, the change as its data). The key is the contact id
    # in every format. Every worker of a prefix needs the same value.
    changes_format: Literal["native", "cloudevents-binary", "cloudevents-structured"] = "native"
    # Tracing (docs/tracing.md): "otlp" records spans of ingest and the
    # batch evaluator, exported over OTLP/HTTP, and carries the W3C trace
    # context in Kafka headers from upstream records to membership changes;
    # "off" never does. Unset (the default): the standard OTEL_* variables
    # decide (on when OTEL_TRACES_EXPORTER=otlp or an OTLP endpoint is set),
    # so a deployment that configures neither traces nothing.
    tracing: Literal["off", "otlp"] | None = None

    @property
    def limits(self) -> Limits:
        return Limits(
            max_events_per_type=self.max_events_per_type,
            max_seen_ids=self.dedup_event_ids,
            max_distinct_values=self.max_distinct_values,
            history_retention_us=self.history_retention_days * 86_400_000_000,
            control_group=ControlGroup.parse(self.control_group) if self.control_group else None,
            events_by_type=self.events_by_type(),
        )

    def events_by_type(self) -> tuple[tuple[str, int], ...]:
        """``max_events_by_type`` parsed: ``(type, n)`` pairs."""
        pairs = []
        for item in filter(None, (part.strip() for part in self.max_events_by_type.split(","))):
            name, sep, number = item.partition("=")
            if not sep or not name.strip() or not number.strip().isdigit() \
                    or int(number) < 1:
                raise ValueError(f"SEGMENTFLOW_MAX_EVENTS_BY_TYPE: {item!r} is not "
                                 "'type=N' with N >= 1 (e.g. 'page_visited=2000,purchase=64')")
            pairs.append((name.strip(), int(number)))
        return tuple(pairs)

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.topic_prefix, {
            "contacts": self.contacts_topic,
            "accounts": self.accounts_topic,
            "interactions": self.interactions_topic,
            "segment_definitions": self.segment_definitions_topic,
            "static_edits": self.static_edits_topic,
        })
