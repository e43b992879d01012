"""The ``segmentflow`` command line (click)."""

from __future__ import annotations

import asyncio
import contextlib
import sys

import click

from app.settings import Settings

__all__ = ["main"]


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

    overrides: dict[str, object] = {}
    if web_port is not None:
        overrides["web_port"] = web_port
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    settings = Settings(**overrides)  # type: ignore[arg-type]
    app = create_app(settings)
    Worker(app, loglevel=settings.log_level).execute_from_commandline()


@cli.command()
@click.option("--events", type=int, default=20_000, show_default=True,
              help="Interactions to replay from the Online Retail history.")
@click.option("--prefix", default=None, help="Topic prefix (default: a fresh demo-<time>).")
def demo(events: int, prefix: str | None) -> None:
    """Start a worker, define demo segments, replay real purchase history and
    show membership changes as they happen."""
    from app.demo import run_demo

    sys.exit(asyncio.run(run_demo(events=events, prefix=prefix)))


@cli.command("produce-demo")
@click.option("--events", type=int, default=20_000, show_default=True)
def produce_demo(events: int) -> None:
    """Replay the Online Retail history onto the input topics."""
    from app.client import Publisher
    from app.retail_dataset import replay_inputs

    async def run() -> int:
        async with Publisher(Settings()) as publisher:
            return await publisher.send_all(replay_inputs(limit=events))

    click.echo(f"produced {asyncio.run(run())} inputs")


@cli.command()
@click.option("--from-beginning/--latest", default=False)
def watch(from_beginning: bool) -> None:
    """Tail membership changes live."""
    from app.client import tail
    from app.demo import format_change

    settings = Settings()

    async def run() -> None:
        async for _, value in tail(settings, settings.topics.membership_changes,
                                   from_beginning=from_beginning):
            if value is not None:
                click.echo(format_change(value))

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
