"""`scicat-pipeline`: the one command-line entry point for operators and newcomers."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from scicat_pipeline.commands import register_all
from scicat_pipeline.stack import Stack, StackOptions

app = typer.Typer(
    help="Event-driven ingestion and publication pipeline for SciCat-style catalogues.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
err = Console(stderr=True)

KafkaOpt = Annotated[
    str | None,
    typer.Option("--kafka", help="Use this Kafka (host:port) instead of the embedded one."),
]
MongoOpt = Annotated[
    str | None, typer.Option("--mongodb", help="Use this MongoDB URI instead of the embedded one.")
]
OpenSearchOpt = Annotated[
    str | None,
    typer.Option("--opensearch", help="Use this OpenSearch URL instead of the embedded one."),
]
StateOpt = Annotated[
    Path | None, typer.Option("--state-dir", help="Where logs go (default: a temporary folder).")
]

AfterStart = Callable[[Stack], Awaitable[None]]


async def _serve(options: StackOptions, after_start: AfterStart | None, keep_running: bool) -> None:
    """Start the stack, print its endpoints, run `after_start`, then wait for SIGINT/SIGTERM."""
    stack = Stack(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        endpoints = await stack.start()
        sys.stdout.write(json.dumps(endpoints) + "\n")
        sys.stdout.flush()
        if after_start is not None:
            await after_start(stack)
        while keep_running and not stop.is_set():
            stack.check_alive()
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                pass
    finally:
        err.print("[dim]stopping…[/dim]")
        await stack.stop()


@app.command()
def up(
    kafka: KafkaOpt = None,
    mongodb: MongoOpt = None,
    opensearch: OpenSearchOpt = None,
    state_dir: StateOpt = None,
) -> None:
    """Start the stores (embedded unless given), the DataCite stand-in and the four services.

    Prints one JSON line with the endpoints, then runs until SIGINT or SIGTERM.
    """
    options = StackOptions(kafka=kafka, mongodb=mongodb, opensearch=opensearch, state_dir=state_dir)
    asyncio.run(_serve(options, None, keep_running=True))


@app.command()
def demo(
    kafka: KafkaOpt = None,
    mongodb: MongoOpt = None,
    opensearch: OpenSearchOpt = None,
    state_dir: StateOpt = None,
    exit_when_done: Annotated[
        bool, typer.Option("--exit", help="Stop once the demo has printed its URLs.")
    ] = False,
) -> None:
    """`up`, then replay a sample P08 beamtime, publish it, and print what to open."""
    from scicat_pipeline.demo import run_demo

    async def replay(stack: Stack) -> None:
        err.print("[bold]Replaying a PETRA III P08 beamtime (3 runs, 10 files)…[/bold]")
        result = await run_demo(stack.endpoints, database=stack.options.database)
        sys.stdout.write(
            json.dumps(
                {
                    "search": result.search_url,
                    "oai_pmh_list_records": result.list_records_url,
                    "landing_page": result.landing_url,
                    "doi": result.doi,
                }
            )
            + "\n"
        )
        sys.stdout.flush()
        err.print(f"[green]✓[/green] {result.datasets} datasets ingested, indexed and published")
        for label, url in (
            ("search", result.search_url),
            ("OAI-PMH", result.list_records_url),
            ("landing page", result.landing_url),
        ):
            err.print(f"  {label + ':':<14}{url}", soft_wrap=True, highlight=False)
        err.print(
            "  private view: scicat-pipeline token "
            f"--issuer {stack.endpoints['oidc']} --groups {result.beamtime_id}-dmgt",
            soft_wrap=True,
            highlight=False,
        )
        if not exit_when_done:
            err.print("[dim]Press Ctrl-C to stop.[/dim]")

    options = StackOptions(kafka=kafka, mongodb=mongodb, opensearch=opensearch, state_dir=state_dir)
    asyncio.run(_serve(options, replay, keep_running=not exit_when_done))


register_all(app)

if __name__ == "__main__":
    app()
