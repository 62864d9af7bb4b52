"""`scicat-pipeline emit`: send one valid event from a beamline script (Sardana macro, shell).

Each command builds the event with `scicat_schemas.producer.EventProducer` (validated before
anything is sent), prints the event id on stdout and exits 0 once Kafka acknowledged it
(`acks=all`). Bad input exits 2 naming the field; an unreachable Kafka exits 1.

Ids are derived from the content, so running the same command again (a retry after a timeout)
sends a duplicate the ingestor recognises. That holds when the times are fixed: `file-closed`
defaults `--time` to the file's modification time; give `--time` to `run-started` /
`run-stopped` for retry-safe ids.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from scicat_ingestor.adapters import BrokenMessage, from_epoch, infer_epoch_unit
from scicat_ingestor.adapters.door import from_beamtime_metadata
from scicat_pipeline.sending import (
    DEFAULT_KAFKA,
    BadInput,
    IdOpt,
    KafkaOpt,
    SourceOpt,
    bad_input,
    send_one,
)
from scicat_schemas.events import Checksum, CloudEvent
from scicat_schemas.producer import EventProducer

app = typer.Typer(
    name="emit",
    help="Send one event (run-started, file-closed, run-stopped, beamtime) to Kafka.",
    no_args_is_help=True,
)

RunOpt = Annotated[str, typer.Option("--run-id", envvar="SCICAT_RUN_ID", help="Run (scan) id.")]
BeamtimeOpt = Annotated[
    str, typer.Option("--beamtime-id", envvar="SCICAT_BEAMTIME_ID", help="Beamtime id.")
]
InstrumentOpt = Annotated[
    str, typer.Option("--instrument", envvar="SCICAT_INSTRUMENT", help="Instrument, e.g. P08.")
]
TimeOpt = Annotated[
    str | None,
    typer.Option(
        "--time",
        help="ISO 8601 with offset, or epoch seconds/milliseconds/nanoseconds (by magnitude).",
    ),
]
MetadataOpt = Annotated[
    str | None,
    typer.Option("--metadata", help="Scientific metadata: a JSON object, or @file.json."),
]
DEFAULT_SOURCE = "/scicat-pipeline/emit"


def parse_time(text: str | None) -> datetime | None:
    """`--time`: an aware ISO 8601 string or an epoch number in s, ms or ns."""
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return _iso_time(text)
    value = int(text) if text.lstrip("-").isdigit() else number
    try:
        moment: datetime = from_epoch(value, infer_epoch_unit(value))
        return moment
    except ValueError as error:
        raise BadInput(f"--time: {error}") from None


def _iso_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"--time {text!r} is neither ISO 8601 nor an epoch number") from None
    if moment.tzinfo is None:
        raise BadInput(f"--time {text!r} has no UTC offset; add one, e.g. +00:00 or Z")
    return moment


def parse_metadata(text: str | None) -> dict[str, Any]:
    """`--metadata`: a JSON object given inline or as `@path`."""
    if text is None:
        return {}
    where = "--metadata"
    if text.startswith("@"):
        where = text[1:]
        try:
            text = Path(where).read_text()
        except OSError as error:
            raise BadInput(f"--metadata file {where!r} cannot be read: {error}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadInput(f"{where} is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise BadInput(f"{where} must be a JSON object, not {type(value).__name__}")
    return value


def parse_checksum(text: str | None) -> Checksum | None:
    if text is None:
        return None
    algorithm, _, value = text.partition(":")
    if not algorithm or not value:
        raise BadInput(f"--checksum {text!r} must be ALGORITHM:HEX, e.g. sha256:ab12...")
    return Checksum(algorithm=algorithm, value=value)


@app.command("run-started")
def run_started(
    run_id: RunOpt,
    beamtime_id: BeamtimeOpt,
    instrument: InstrumentOpt,
    time: TimeOpt = None,
    dataset_name: Annotated[str | None, typer.Option(help="Dataset name.")] = None,
    source_folder: Annotated[str | None, typer.Option(help="Folder of the run's files.")] = None,
    description: Annotated[str | None, typer.Option(help="Free-text description.")] = None,
    metadata: MetadataOpt = None,
    event_id: IdOpt = None,
    kafka: KafkaOpt = DEFAULT_KAFKA,
    source: SourceOpt = DEFAULT_SOURCE,
) -> None:
    """A run began: opens its dataset."""
    with bad_input(BrokenMessage):
        started_at, scientific = parse_time(time), parse_metadata(metadata)

    async def send(producer: EventProducer) -> CloudEvent:
        return await producer.run_started(
            run_id=run_id,
            beamtime_id=beamtime_id,
            instrument=instrument,
            started_at=started_at,
            dataset_name=dataset_name,
            source_folder=source_folder,
            description=description,
            metadata=scientific,
            event_id=event_id,
        )

    send_one(kafka, source, send)


@app.command("file-closed")
def file_closed(
    path: Annotated[str, typer.Argument(help="The file; made absolute.")],
    run_id: RunOpt,
    beamtime_id: BeamtimeOpt,
    instrument: InstrumentOpt,
    size: Annotated[
        int | None, typer.Option(help="Bytes (default: the file's size; required if unreadable).")
    ] = None,
    time: TimeOpt = None,
    checksum: Annotated[str | None, typer.Option(help="ALGORITHM:HEX, e.g. sha256:ab12.")] = None,
    metadata: MetadataOpt = None,
    event_id: IdOpt = None,
    kafka: KafkaOpt = DEFAULT_KAFKA,
    source: SourceOpt = DEFAULT_SOURCE,
) -> None:
    """A file was closed: it joins its run's dataset. Size and time default to the file's."""
    absolute = os.path.abspath(path)
    with bad_input(BrokenMessage):
        file_size, closed_at = size, parse_time(time)
        chk, scientific = parse_checksum(checksum), parse_metadata(metadata)
        if file_size is None or closed_at is None:
            try:
                stat = os.stat(absolute)
            except OSError as error:
                raise BadInput(
                    f"{absolute} cannot be read ({error.strerror}); give --size and --time"
                ) from None
            file_size = stat.st_size if file_size is None else file_size
            closed_at = closed_at or datetime.fromtimestamp(stat.st_mtime, UTC)

    async def send(producer: EventProducer) -> CloudEvent:
        return await producer.file_closed(
            run_id=run_id,
            beamtime_id=beamtime_id,
            instrument=instrument,
            path=absolute,
            size=file_size,
            closed_at=closed_at,
            checksum=chk,
            metadata=scientific,
            event_id=event_id,
        )

    send_one(kafka, source, send)


@app.command("run-stopped")
def run_stopped(
    run_id: RunOpt,
    beamtime_id: BeamtimeOpt,
    instrument: InstrumentOpt,
    status: Annotated[
        Literal["success", "abort", "fail"], typer.Option(help="How the run ended.")
    ] = "success",
    reason: Annotated[str | None, typer.Option(help="Why, if not success.")] = None,
    time: TimeOpt = None,
    metadata: MetadataOpt = None,
    event_id: IdOpt = None,
    kafka: KafkaOpt = DEFAULT_KAFKA,
    source: SourceOpt = DEFAULT_SOURCE,
) -> None:
    """A run ended: closes its dataset with its status."""
    with bad_input(BrokenMessage):
        stopped_at, scientific = parse_time(time), parse_metadata(metadata)

    async def send(producer: EventProducer) -> CloudEvent:
        return await producer.run_stopped(
            run_id=run_id,
            beamtime_id=beamtime_id,
            instrument=instrument,
            stopped_at=stopped_at,
            status=status,
            reason=reason,
            metadata=scientific,
            event_id=event_id,
        )

    send_one(kafka, source, send)


@app.command("beamtime")
def beamtime(
    file: Annotated[Path, typer.Argument(help="A DOOR beamtime-metadata-<id>.json export.")],
    kafka: KafkaOpt = DEFAULT_KAFKA,
    local_zone: Annotated[
        str, typer.Option(help="Time zone of DOOR times written without an offset.")
    ] = "Europe/Berlin",
) -> None:
    """A DOOR export becomes `beamtime.updated` on proposals.events (same file = duplicate)."""
    with bad_input(BrokenMessage):
        try:
            export = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise BadInput(f"{file} is not a readable JSON file: {error}") from None
        if not isinstance(export, dict):
            raise BadInput(f"{file} holds no JSON object")
        event = from_beamtime_metadata(export, local_zone=local_zone)

    async def send(producer: EventProducer) -> CloudEvent:
        return await producer.send(event)

    send_one(kafka, event.source, send)


def register(root: typer.Typer) -> None:
    root.add_typer(app)
