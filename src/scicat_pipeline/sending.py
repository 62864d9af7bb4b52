"""What the commands that send one event share (`emit`, `publish`): options, errors, exit codes.

Bad input exits 2 with a message naming the problem, before Kafka is contacted; a Kafka that
does not take the event exits 1; success prints the event id on stdout (scripts capture it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from rich.console import Console

from scicat_pipeline.kafka_access import kafka_security
from scicat_schemas.events import CloudEvent
from scicat_schemas.producer import EventProducer

err = Console(stderr=True, soft_wrap=True)

DEFAULT_KAFKA = "localhost:9092"
KafkaOpt = Annotated[
    str, typer.Option("--kafka", envvar="SCICAT_KAFKA", help="Kafka bootstrap servers.")
]
SourceOpt = Annotated[
    str,
    typer.Option(
        "--source",
        envvar="SCICAT_EVENT_SOURCE",
        help="CloudEvent source naming this producer, e.g. /desy/p08/sardana.",
    ),
]
IdOpt = Annotated[
    str | None, typer.Option("--id", help="Event id (default: derived from the content).")
]


class BadInput(ValueError):
    """Input the user must fix; printed without a traceback, exit code 2."""


def problems(error: ValidationError) -> str:
    """pydantic's errors as one line: `field.path: message; ...`."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in error.errors()
    )


@contextmanager
def bad_input(*also: type[Exception]) -> Iterator[None]:
    """Input errors found before connecting: a message and exit code 2, no traceback."""
    caught: tuple[type[Exception], ...] = (BadInput, *also)
    try:
        yield
    except caught as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None


def send_one(
    kafka: str, source: str, send: Callable[[EventProducer], Awaitable[CloudEvent]]
) -> None:
    """Run one send, print the id, and turn failures into clear messages and exit codes."""
    security = kafka_security()

    async def run() -> CloudEvent:
        async with EventProducer(
            kafka, source=source, request_timeout_ms=15_000, security=security
        ) as producer:
            return await send(producer)

    try:
        event = asyncio.run(run())
    except ValidationError as error:
        err.print(f"[red]invalid event:[/red] {problems(error)}")
        raise typer.Exit(2) from None
    except KafkaError as error:
        err.print(f"[red]Kafka at {kafka} did not take the event:[/red] {error!r}")
        raise typer.Exit(1) from None
    typer.echo(event.id)
