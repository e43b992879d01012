"""Prometheus metrics of one worker, on its own registry (served at ``/metrics``).

Hot-path metrics (counters, histograms) are updated by the agents with one
cheap call each; label children used per input are resolved once, up front.
Everything that describes state (segment sizes, due index, go-live progress,
consumer lag) is computed when Prometheus scrapes, by a collector that reads
the evaluator's state through ``StateSource`` and never writes it.

``/metrics`` is open, so segment ids appear as label values only with
``segment_labels`` (``SEGMENTFLOW_METRICS_SEGMENT_LABELS=true``): without it
per-segment series are aggregated (changes by kind, number of segments,
segments whose go-live is incomplete).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "Metrics", "StateSource", "dead_letter_reason"]

# The text exposition format Prometheus scrapes (prometheus_client's own).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_EVAL_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                 0.025, 0.05, 0.1, 0.5, 1.0)


def dead_letter_reason(reason: str) -> str:
    """A bounded label for a free-text dead-letter reason."""
    if reason.startswith("empty message"):
        return "empty"
    if "exceeds" in reason and reason.startswith(("input of", "forwarded record of")):
        return "too_large"
    if reason.startswith("not forwarded"):
        return "not_forwarded"
    if reason.startswith("ingest failed"):
        return "ingest_failed"
    if reason.startswith("segment refused"):
        return "segment_refused"
    if reason.startswith("evaluation failed"):
        return "evaluation_failed"
    if reason.startswith(("undeclared event type", "event type ")):
        return "event_type"
    return "invalid"


class StateSource(Protocol):
    """What the scrape-time collector reads (``agents.batch_evaluator.BatchEvaluatorHandle``)."""

    def metrics_snapshot(self) -> dict[str, Any]: ...


class _StateCollector(Collector):
    def __init__(self, source: StateSource | None, segment_labels: bool) -> None:
        self.source = source
        self.segment_labels = segment_labels

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.source is None:
            return
        snap = self.source.metrics_snapshot()
        yield _gauge("segmentflow_assigned_partitions",
                     "Evaluator partitions held and readable here "
                     "(0 during a rebalance or recovery).", snap["partitions"])
        yield from (self._per_segment(snap) if self.segment_labels
                    else self._aggregated(snap))
        yield _gauge("segmentflow_segments_refused",
                     "Segments whose newest definition the evaluator refused (a reference "
                     "cycle, a compile error): the previous version stays in force.",
                     snap.get("refused", 0))
        yield _gauge("segmentflow_due_index_entries",
                     "Contacts waiting in the due-time index (this worker).", snap["due_entries"])
        yield _gauge("segmentflow_tick_lag_seconds",
                     "How far the earliest due contact is overdue (0 when none is).",
                     snap["tick_lag"])
        lag = GaugeMetricFamily(
            "segmentflow_consumer_lag_messages",
            "Evaluator-input messages not yet read, per partition held here.",
            labels=["partition"])
        for partition, value in sorted(snap["consumer_lag"].items()):
            lag.add_metric([str(partition)], value)
        yield lag
        standby = GaugeMetricFamily(
            "segmentflow_standby_lag_records",
            "Changelog records a standby copy kept here has not applied yet, per "
            "partition (SEGMENTFLOW_STANDBY_REPLICAS): what a failover would restore.",
            labels=["partition"])
        for partition, value in sorted(snap.get("standby_lag", {}).items()):
            standby.add_metric([str(partition)], value)
        yield standby
        yield from self._clocks(snap)

    @staticmethod
    def _clocks(snap: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
        """Per partition held here: its event clock and how far it trails the
        wall clock (docs/clock.md); the wall clock does not trail itself."""
        clock = GaugeMetricFamily(
            "segmentflow_event_clock_seconds",
            "Event clock of each partition held here (Unix seconds; SEGMENTFLOW_CLOCK=event, "
            "once the partition has seen an event time).", labels=["partition"])
        lag = GaugeMetricFamily(
            "segmentflow_clock_lag_seconds",
            "Wall clock minus the partition's event clock (0 on the wall clock).",
            labels=["partition"])
        wall = time.time()
        event = snap.get("clock_mode") == "event"
        for partition, at in sorted(snap.get("clocks", {}).items()):
            if not event:
                lag.add_metric([str(partition)], 0.0)
            elif at is not None:
                clock.add_metric([str(partition)], at.timestamp())
                lag.add_metric([str(partition)], wall - at.timestamp())
        yield clock
        yield lag

    @staticmethod
    def _aggregated(snap: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
        yield _gauge("segmentflow_segments",
                     "Segments known here (per-segment series: "
                     "SEGMENTFLOW_METRICS_SEGMENT_LABELS=true).", len(snap["sizes"]))
        yield _gauge("segmentflow_golive_incomplete_segments",
                     "Segments whose go-live backfill is incomplete on some partition here.",
                     sum(1 for _, ratio in snap["golive"].values() if ratio < 1.0))

    @staticmethod
    def _per_segment(snap: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
        sizes = GaugeMetricFamily(
            "segmentflow_segment_members",
            "Exact member count of each segment over this worker's partitions "
            "(a scan of the contacts, refreshed at most every metrics_sizes_ttl s).",
            labels=["segment"])
        for segment, count in sorted(snap["sizes"].items()):
            sizes.add_metric([segment], count)
        yield sizes
        scanned = GaugeMetricFamily(
            "segmentflow_golive_contacts_scanned",
            "Contacts re-evaluated by the current go-live backfill of each segment.",
            labels=["segment"])
        done = GaugeMetricFamily(
            "segmentflow_golive_complete_ratio",
            "Share of this worker's partitions whose go-live backfill is complete.",
            labels=["segment"])
        for segment, (count, ratio) in sorted(snap["golive"].items()):
            scanned.add_metric([segment], count)
            done.add_metric([segment], ratio)
        yield scanned
        yield done


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], value)
    return family


class Metrics:
    """All metrics of one worker. One instance per app (tests build many)."""

    def __init__(self, *, segment_labels: bool = False) -> None:
        self.segment_labels = segment_labels
        self.registry = CollectorRegistry()
        r = self.registry
        self.inputs = Counter(
            "segmentflow_inputs", "Upstream inputs by source topic and outcome.",
            ["source", "outcome"], registry=r)
        self.dead_letters = Counter(
            "segmentflow_dead_letters", "Dead-lettered inputs by reason.",
            ["reason"], registry=r)
        self.segments_quarantined = Counter(
            "segmentflow_segments_quarantined",
            "Stored segment definitions that could not be loaded or compiled back "
            "(left out of their partitions' catalogs; counted once per definition).",
            registry=r)
        self.evaluation_seconds = Histogram(
            "segmentflow_evaluation_seconds",
            "Time to evaluate one evaluator input (engine + outputs handed to the producer).",
            buckets=_EVAL_BUCKETS, registry=r)
        self.latency = Histogram(
            "segmentflow_end_to_end_latency_seconds",
            "From an input to the membership change it caused being emitted; "
            "clock=event: from the input's event time, clock=produce: from its "
            "Kafka record timestamp.",
            ["clock"], buckets=_LATENCY_BUCKETS, registry=r)
        self.latency_event = self.latency.labels("event")
        self.latency_produce = self.latency.labels("produce")
        self.changes = Counter(
            "segmentflow_membership_changes",
            "Joins and leaves emitted, by segment (with segment labels) and kind.",
            ["segment", "change"] if segment_labels else ["change"], registry=r)
        self._change_children: dict[tuple[str, str], Any] = {}
        self.collector = _StateCollector(None, segment_labels)
        r.register(self.collector)

    def watch(self, source: StateSource) -> None:
        self.collector.source = source

    def count_changes(self, changes: Iterable[Any]) -> None:
        children = self._change_children
        per_segment = self.segment_labels
        for change in changes:
            key = (change.segment_id if per_segment else "", change.change)
            child = children.get(key)
            if child is None:
                child = children[key] = self.changes.labels(*(key if per_segment else key[1:]))
            child.inc()

    def observe_latency(self, event_time: float | None, produce_time: float | None) -> None:
        now = time.time()
        if event_time is not None:
            self.latency_event.observe(max(0.0, now - event_time))
        if produce_time is not None:
            self.latency_produce.observe(max(0.0, now - produce_time))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
