"""The ``segmentflow`` command line (click)."""

from __future__ import annotations

import asyncio
import contextlib
import sys

import click

from app.cli_api import register_api_commands
from app.cli_apply import register_apply_command
from app.cli_backtest import register_backtest_command
from app.cli_event_types import register_event_type_commands
from app.cli_kafka import format_change, register_kafka_commands, run_kafka
from app.cli_status import register_status_commands
from app.settings import Settings

__all__ = ["format_change", "main"]


@click.group()
def cli() -> None:
    """segmentflow: live marketing segments on Kafka."""


@cli.command()
@click.option("--web-port", type=int, default=None, help="Overrides SEGMENTFLOW_WEB_PORT.")
@click.option("--data-dir", default=None, help="Overrides SEGMENTFLOW_DATA_DIR.")
def worker(web_port: int | None, data_dir: str | None) -> None:
    """Run a worker (ingest, evaluator, web) until interrupted."""
    from faust.worker import Worker

    from app.faust_app import create_app
    from app.gc_tuning import tune_collector

    overrides: dict[str, object] = {}
    if web_port is not None:
        overrides["web_port"] = web_port
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    settings = Settings(**overrides)  # type: ignore[arg-type]
    app = create_app(settings)
    runner = Worker(app, loglevel=settings.log_level)
    # Faust's terminal spinner, kept at log levels from WARNING up, sets the
    # root logger to DEBUG so that every record turns it: every library's
    # debug call (aiokafka logs one per record sent) then builds a
    # LogRecord for nothing (~4 % of the worker's CPU under load).
    runner.spinner = None
    tune_collector()
    runner.execute_from_commandline()


@cli.command()
@click.option("--events", type=int, default=20_000, show_default=True,
              help="Lines of the Online Retail history to replay (20,000: 12 days).")
@click.option("--prefix", default=None, help="Topic prefix (default: a fresh demo-<time>).")
@click.option("--web-port", type=int, default=None,
              help="API port of the demo's worker (default: SEGMENTFLOW_WEB_PORT, 6066).")
@click.option("--once", is_flag=True, help="Stop after the replay (no synthetic trickle).")
@click.option("--trickle-days", type=click.IntRange(0), default=None,
              help="Stop after this many synthetic days (default: run until Ctrl-C).")
@click.option("--pace", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Seconds between synthetic days.")
def demo(events: int, prefix: str | None, web_port: int | None, once: bool,
         trickle_days: int | None, pace: float) -> None:
    """Start a worker on the event clock, define the demo segments, replay
    real purchase history day by day, then a trickle of synthetic purchases
    so windows expire; membership changes scroll, segment sizes stay in
    view. The same output every run. Ctrl-C stops it."""
    from tools.demo import run_demo

    settings = Settings()
    # Ctrl-C (and SIGTERM) end the demo: it stops its worker and prints the sizes.
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        sys.exit(run_kafka(settings, run_demo(
            events=events, prefix=prefix, web_port=web_port,
            trickle=0 if once else trickle_days, pace=pace)))


@cli.command("produce-demo")
@click.option("--events", type=int, default=20_000, show_default=True,
              help="Interactions to produce.")
@click.option("--source", type=click.Choice(["retail", "synthetic"]), default="retail",
              show_default=True,
              help="retail: the Online Retail purchase history (datasets/); synthetic: "
                   "the seeded workload generator (contacts, accounts, mixed interactions).")
@click.option("--contacts", type=int, default=1000, show_default=True,
              help="Contacts of the synthetic workload.")
def produce_demo(events: int, source: str, contacts: int) -> None:
    """Replay demo traffic onto the input topics, with a progress bar."""
    from app.client import Publisher
    from models.inputs import Interaction

    if source == "retail":
        from tools.retail_dataset import replay_inputs
        inputs = replay_inputs(limit=events)
        total = events  # the limit counts interactions; contact upserts come on top

        def counted(model: object) -> bool:
            return isinstance(model, Interaction)
    else:
        from tools.workload import Workload
        workload = Workload(contacts=contacts, events=events)
        inputs = workload.inputs()
        total = workload.accounts + workload.contacts + workload.events  # one input each

        def counted(model: object) -> bool:
            return True

    settings = Settings()

    async def run() -> int:
        count = 0
        async with Publisher(settings) as publisher:
            with click.progressbar(length=total, label="producing", file=sys.stderr) as bar:
                for model in inputs:
                    await publisher.send(model)
                    count += 1
                    if counted(model):
                        bar.update(1)
            await publisher.flush()
        return count

    produced = run_kafka(settings, run())
    click.echo(f"produced {produced} inputs")


register_api_commands(cli)
register_apply_command(cli)
register_backtest_command(cli)
register_event_type_commands(cli)
register_kafka_commands(cli)
register_status_commands(cli)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
