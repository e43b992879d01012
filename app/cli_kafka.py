"""CLI commands that talk to Kafka directly: produce, dead-letters, watch.

Topics and the broker come from the settings (env ``KAFKA_BOOTSTRAP_SERVERS``,
``SEGMENTFLOW_TOPIC_PREFIX``). A broker that cannot be reached is one line
on stderr and exit code 3 (the CLI's "service unreachable"), never a
traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections import deque
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from app.settings import Settings

__all__ = ["format_change", "register_kafka_commands", "run_kafka"]

T = TypeVar("T")


def run_kafka(settings: Settings, main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``; an unreachable broker exits 3 with one line,
    missing topics exit 1."""
    from aiokafka.errors import KafkaConnectionError, UnknownTopicOrPartitionError

    # aiokafka logs each failed connection; the CLI says it once, below
    # (a configured root logger still receives them).
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    try:
        return asyncio.run(main)
    except KafkaConnectionError:
        click.echo(f"error: cannot reach Kafka at {settings.bootstrap_servers} "
                   "(KAFKA_BOOTSTRAP_SERVERS): is the broker running?", err=True)
        sys.exit(3)
    except UnknownTopicOrPartitionError:
        click.echo(f"error: the input topics ({settings.topic_prefix}.*) do not exist yet: "
                   "start a worker first (it creates them)", err=True)
        sys.exit(1)


def format_change(raw: bytes) -> str:
    """One membership change (a record value, in any SEGMENTFLOW_CHANGES_FORMAT)
    as a coloured line."""
    from models.change_events import native_change

    c = native_change(raw)
    sign = click.style("+ joined", fg="green") if c["change"] == "joined" else click.style(
        "- left  ", fg="red")
    cause = c["cause"]["kind"] + (f" {c['cause']['ref']}" if c["cause"].get("ref") else "")
    return f"{c['at'][:19]}  {sign}  {c['segment_id']:<24} {c['contact_id']:<8} ({cause})"


def format_dead_letter(record: dict[str, Any]) -> str:
    """A dead letter as two lines: where it came from and why; the value."""
    where = f"{record.get('source_topic')}/{record.get('partition')}@{record.get('offset')}"
    preview = str(record.get("preview", ""))
    more = " (truncated)" if record.get("truncated") or len(preview) > 200 else ""
    return (f"{str(record.get('at', ''))[:19]}  {where}  {record.get('reason')}\n"
            f"    value: {preview[:200]!r}{more}")


def _dead_letter(value: bytes | None) -> dict[str, Any]:
    try:
        record = json.loads(value or b"")
        if isinstance(record, dict):
            return record
    except ValueError:
        pass
    return {"reason": "(not a dead-letter record)",
            "preview": (value or b"")[:512].decode("utf-8", errors="replace")}


async def read_dead_letters(settings: Settings, limit: int | None, follow: bool,
                            emit: Callable[[dict[str, Any]], None]) -> int:
    """Every dead letter (or the newest ``limit``), oldest first; then, with
    ``follow``, new ones as they come. Returns how many were emitted before
    following. A plain consumer: no group, nothing committed."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic = settings.topics.dead_letters
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                enable_auto_commit=False, group_id=None)
    await _start(consumer)
    try:
        # (consumer.topics() fetches the same but keeps only the names)
        cluster = await consumer._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(topic)
        if not partitions:
            raise click.ClickException(f"no topic {topic} (a worker creates it; check "
                                       "SEGMENTFLOW_TOPIC_PREFIX)")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        kept: deque[tuple[int, int, int, dict[str, Any]]] = deque()
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                kept.extend((r.timestamp, tp.partition, r.offset, _dead_letter(r.value))
                            for r in records if r.offset < ends[tp])
        found = sorted(kept, key=lambda item: item[:3])
        shown = found[-limit:] if limit is not None else found
        for *_, record in shown:
            emit(record)
        while follow:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    emit(_dead_letter(r.value))
        return len(shown)
    finally:
        await consumer.stop()


async def _start(client: Any) -> None:
    """Start an aiokafka client; on failure, close it before raising."""
    try:
        await client.start()
    except BaseException:
        with contextlib.suppress(Exception):
            await client.stop()
        raise


def _event_type_gate(settings: Settings, docs: list[Any], input_type: str | None) -> Any:
    """Interactions are checked against the event types declared on the
    topic (read once, only when there are interactions; docs/event-types.md)."""
    from agents.event_types import EventTypeFeed, InteractionGate, read_registry
    from app.cli_inputs import detect_type

    if not any((input_type or detect_type(doc)) == "interaction" for doc in docs):
        return None
    registry = run_kafka(settings, read_registry(settings.bootstrap_servers,
                                                 settings.topics.event_types))
    return InteractionGate(EventTypeFeed.fixed(registry), settings.accept_undeclared_event_types)


def register_kafka_commands(cli: click.Group) -> None:
    from app.cli_inputs import INPUT_TYPES

    @cli.command()
    @click.option("-f", "--filename", "path", required=True,
                  help="JSON, JSON lines or YAML file of inputs ('-' for stdin).")
    @click.option("--type", "input_type", type=click.Choice(sorted(INPUT_TYPES)), default=None,
                  help="Input type of every document (default: told by each document's "
                       "fields, see README).")
    @click.option("--partial", is_flag=True,
                  help="Send the valid documents even if some are invalid (exit code still 1).")
    def produce(path: str, input_type: str | None, partial: bool) -> None:
        """Publish hand-written inputs (contacts, accounts, interactions, static
        edits) to their topics, validated as ingest validates them."""
        from app.cli_inputs import DocumentsError, check_documents, read_documents

        settings = Settings()
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        try:
            docs = read_documents(text)
        except DocumentsError as exc:
            raise click.ClickException(f"{path}: {exc}") from None
        if not docs:
            raise click.ClickException(f"{path}: no documents")
        checked = check_documents(docs, input_type, settings.max_input_bytes,
                                  _event_type_gate(settings, docs, input_type))
        for problem in checked.problems:
            click.echo(f"invalid: {problem}", err=True)
        if checked.problems and not partial:
            click.echo(f"nothing produced: {len(checked.problems)} of {len(docs)} documents "
                       "invalid (--partial sends the valid ones)", err=True)
            sys.exit(1)

        async def send() -> int:
            from app.client import Publisher

            async with Publisher(settings) as publisher:
                return await publisher.send_all(checked.models)

        produced = run_kafka(settings, send()) if checked.models else 0
        refused = f" ({len(checked.problems)} invalid, not sent)" if checked.problems else ""
        click.echo(f"produced {produced} inputs{refused}")
        if checked.problems:
            sys.exit(1)

    @cli.command("dead-letters")
    @click.option("--limit", type=click.IntRange(1), default=None,
                  help="Only the newest N (default: all).")
    @click.option("--follow", "-F", is_flag=True, help="Keep tailing new dead letters.")
    @click.option("--json", "as_json", is_flag=True,
                  help="One JSON record per line (with raw_base64 for replays).")
    def dead_letters(limit: int | None, follow: bool, as_json: bool) -> None:
        """List refused inputs with the reason, their source topic, partition and
        offset, and a preview of the value."""
        settings = Settings()

        def emit(record: dict[str, Any]) -> None:
            click.echo(json.dumps(record, ensure_ascii=False) if as_json
                       else format_dead_letter(record))

        with contextlib.suppress(KeyboardInterrupt):
            shown = run_kafka(settings, read_dead_letters(settings, limit, follow, emit))
            if not shown and not as_json:
                click.echo(f"no dead letters on {settings.topics.dead_letters}", err=True)

    @cli.command()
    @click.option("--from-beginning/--latest", default=False)
    @click.option("--segment", "segments", multiple=True,
                  help="Only changes of this segment (repeatable).")
    def watch(from_beginning: bool, segments: tuple[str, ...]) -> None:
        """Tail membership changes live (from Kafka)."""
        from app.client import tail

        settings = Settings()

        async def run() -> None:
            async for _, value in tail(settings, settings.topics.membership_changes,
                                       from_beginning=from_beginning):
                if value is not None and (not segments or _segment_of(value) in segments):
                    click.echo(format_change(value))

        with contextlib.suppress(KeyboardInterrupt):
            run_kafka(settings, run())


def _segment_of(value: bytes) -> str | None:
    from models.change_events import native_change

    return native_change(value).get("segment_id")

