"""`scicat-pipeline ingest PATH...`: back-fill existing files without Kafka, through the same code.

The files become the same events a live producer would send, applied by the ingestor's own
batch path (`BatchIngestor.apply_in_order`) on its MongoDB store, `INGESTOR_BATCH_MAX_RECORDS`
events per transaction, files read `INGESTOR_FILE_READ_CONCURRENCY` at a time (domain,
checksums, NeXus metadata, beamtime completion, idempotency markers: all the service's
rules). Settings come from the same `INGESTOR_*` environment variables as the service (pid
prefix, group templates, mappings); `--mongodb` / `--database` override the store.

Runs: every directory that directly holds files is one run. Its run id is the directory's path
relative to the PATH argument (`raw/` given → `scan_001`, `scan_001/det1`); files directly in a
PATH directory form the run named after that directory; a file given as PATH belongs to the run
of its parent directory. Hidden files and directories (`.` prefix) are skipped, and so are
symbolic links unless `--follow-symlinks` is given: then a link to a file is that file (under the
link's path, which is where people look for it) and a link to a directory is walked like one,
each directory once however many links lead to it (no loops); dangling links are skipped.
Each run is `run.started` (source folder = the directory, start = the oldest modification
time), one `file.closed` per file (size and modification time from the
filesystem), and `run.stopped` (success, at the newest modification time).

Event ids derive from the beamtime, run, relative path, size and modification time, so running
the command again skips what is already applied (resumable after an interruption), and only a
new or changed file changes anything.

Without `--kafka` nothing is published: datasets are in MongoDB, but the indexer learns of them
only when they next change. With `--kafka`, `dataset.stored` is published as the service does.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from scicat_ingestor.adapters import event_id
from scicat_ingestor.batch import BatchIngestor
from scicat_ingestor.file_reading import FileReader
from scicat_ingestor.handlers import AcquisitionEvent, AcquisitionHandler
from scicat_ingestor.nexus_metadata import MappingError, load_mappings
from scicat_ingestor.publisher import CountedDatasetEvents, KafkaDatasetEvents
from scicat_ingestor.settings import Settings
from scicat_ingestor.store import MongoCatalogueStore
from scicat_pipeline.kafka_access import kafka_security
from scicat_schemas.events import (
    FileClosed,
    FileClosedData,
    RunStarted,
    RunStartedData,
    RunStopped,
    RunStoppedData,
)
from scicat_schemas.runtime.broker import create_broker
from scicat_schemas.runtime.consumer import Deferred, Rejected
from scicat_schemas.runtime.settings import KafkaSettings

SOURCE = "/scicat-pipeline/ingest"
err = Console(stderr=True, soft_wrap=True)


@dataclass(frozen=True)
class FoundFile:
    path: Path
    size: int
    modified: datetime
    modified_ns: int


@dataclass
class FoundRun:
    run_id: str
    folder: Path
    files: list[FoundFile] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def find_runs(paths: Iterable[Path], *, follow_symlinks: bool = False) -> list[FoundRun]:
    """Group the files under `paths` into runs by the rule in the module docstring."""
    runs: dict[Path, FoundRun] = {}
    for given in paths:
        root = given.absolute()
        if root.is_file():
            runs.setdefault(root.parent, FoundRun(root.parent.name, root.parent)).files.append(
                _found(root)
            )
            continue
        for folder, files in _walk(root, follow_symlinks=follow_symlinks):
            relative = folder.relative_to(root).as_posix()
            run_id = root.name if relative == "." else relative
            run = runs.setdefault(folder, FoundRun(run_id, folder))
            run.files.extend(_found(folder / name) for name in files)
    for run in runs.values():
        run.files = sorted(set(run.files), key=lambda f: f.path)
    return sorted((r for r in runs.values() if r.files), key=lambda r: str(r.folder))


def _walk(root: Path, *, follow_symlinks: bool) -> Iterator[tuple[Path, list[str]]]:
    visited: set[tuple[int, int]] = set()
    for folder, directories, files in os.walk(root, followlinks=follow_symlinks):
        if follow_symlinks:
            identity = _identity(folder)
            if identity in visited:
                directories[:] = []
                continue
            visited.add(identity)
        directories[:] = sorted(d for d in directories if not d.startswith("."))
        wanted = [
            name
            for name in sorted(files)
            if not name.startswith(".") and _wanted(os.path.join(folder, name), follow_symlinks)
        ]
        if wanted:
            yield Path(folder), wanted


def _identity(folder: str) -> tuple[int, int]:
    """The directory itself, whatever path led to it: how a loop of links is recognised."""
    stat = os.stat(folder)
    return stat.st_dev, stat.st_ino


def _wanted(path: str, follow_symlinks: bool) -> bool:
    if not os.path.islink(path):
        return True
    return follow_symlinks and os.path.isfile(path)


def _found(path: Path) -> FoundFile:
    stat = path.stat()
    return FoundFile(
        path=path,
        size=stat.st_size,
        modified=datetime.fromtimestamp(stat.st_mtime_ns / 1e9, UTC),
        modified_ns=stat.st_mtime_ns,
    )


def run_events(run: FoundRun, *, beamtime_id: str, instrument: str) -> list[AcquisitionEvent]:
    """The events a live producer would have sent for `run`, with deterministic ids."""
    key = (beamtime_id, run.run_id)
    first = min(f.modified for f in run.files)
    last = max(f.modified for f in run.files)
    events: list[AcquisitionEvent] = [
        RunStarted(
            id=event_id("ingest", *key, "started"),
            source=SOURCE,
            time=first,
            data=RunStartedData(
                run_id=run.run_id,
                beamtime_id=beamtime_id,
                instrument=instrument,
                started_at=first,
                source_folder=run.folder.as_posix(),
            ),
        )
    ]
    for found in run.files:
        relative = found.path.relative_to(run.folder).as_posix()
        events.append(
            FileClosed(
                id=event_id("ingest", *key, relative, str(found.size), str(found.modified_ns)),
                source=SOURCE,
                time=found.modified,
                subject=found.path.as_posix(),
                data=FileClosedData(
                    run_id=run.run_id,
                    beamtime_id=beamtime_id,
                    instrument=instrument,
                    path=found.path.as_posix(),
                    size=found.size,
                    closed_at=found.modified,
                ),
            )
        )
    events.append(
        RunStopped(
            id=event_id("ingest", *key, "stopped"),
            source=SOURCE,
            time=last,
            data=RunStoppedData(
                run_id=run.run_id,
                beamtime_id=beamtime_id,
                instrument=instrument,
                stopped_at=last,
                status="success",
            ),
        )
    )
    return events


def _print_plan(runs: list[FoundRun], settings: Settings, beamtime: str, instrument: str) -> None:
    policy = settings.policy()
    table = Table(title=f"{len(runs)} run(s), {sum(len(r.files) for r in runs)} file(s)")
    for column in ("dataset pid", "folder", "files", "bytes"):
        table.add_column(column)
    for run in runs:
        ref = RunStoppedData(
            run_id=run.run_id,
            beamtime_id=beamtime,
            instrument=instrument,
            stopped_at=datetime.now(UTC),
        )
        table.add_row(
            policy.dataset_pid(ref), run.folder.as_posix(), str(len(run.files)), str(run.size)
        )
    Console().print(table)


async def _apply(
    runs: list[FoundRun],
    settings: Settings,
    files: FileReader,
    beamtime: str,
    instrument: str,
    kafka: str | None,
) -> int:
    """Apply every run's events; returns how many were refused (each is printed)."""
    store = MongoCatalogueStore(
        settings.mongo,
        marker_retention=settings.marker_retention(),
        datablock_max_files=settings.datablock_max_files,
    )
    broker = None
    events: Any = CountedDatasetEvents()
    if kafka is not None:
        broker = create_broker(
            service="ingest-cli",
            kafka=KafkaSettings(bootstrap_servers=kafka, security=kafka_security()),
            registry=CollectorRegistry(),
        )
        await broker.connect()
        events = KafkaDatasetEvents(broker=broker, source=settings.source)
    handler = AcquisitionHandler(
        store=store,
        events=events,
        policy=settings.policy(),
        files=files,
    )
    batches = BatchIngestor(
        handler, store, events, file_read_concurrency=settings.file_read_concurrency
    )
    refused = 0
    try:
        async with store.connected():
            all_events = [
                e
                for run in runs
                for e in run_events(run, beamtime_id=beamtime, instrument=instrument)
            ]
            with Progress(console=err) as progress:
                task = progress.add_task("ingesting", total=len(all_events))
                for start in range(0, len(all_events), settings.batch_max_records):
                    chunk = all_events[start : start + settings.batch_max_records]
                    outcomes: list[Rejected | Deferred | None] = [None] * len(chunk)
                    await batches.apply_in_order(list(enumerate(chunk)), outcomes)
                    for outcome in outcomes:
                        if isinstance(outcome, Rejected):
                            refused += 1
                            err.print(f"[red]refused:[/red] {outcome.reason}")
                    progress.advance(task, len(chunk))
    finally:
        if broker is not None:
            await broker.stop()
    return refused


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories to back-fill.")],
    beamtime: Annotated[str, typer.Option("--beamtime", help="Beamtime id of the files.")],
    instrument: Annotated[str, typer.Option("--instrument", help="Instrument, e.g. P08.")],
    mongodb: Annotated[
        str | None, typer.Option("--mongodb", help="MongoDB URI (default: INGESTOR_MONGO__URI).")
    ] = None,
    database: Annotated[
        str | None, typer.Option("--database", help="Database (default: INGESTOR_MONGO__DATABASE).")
    ] = None,
    kafka: Annotated[
        str | None, typer.Option("--kafka", help="Also publish dataset.stored to this Kafka.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the runs and datasets; write nothing.")
    ] = False,
    follow_symlinks: Annotated[
        bool,
        typer.Option(
            "--follow-symlinks", help="Take linked files and walk linked directories (once each)."
        ),
    ] = False,
) -> None:
    """Back-fill existing files or directories into the catalogue, without Kafka."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        err.print(f"[red]error:[/red] no such file or directory: {', '.join(missing)}")
        raise typer.Exit(2)
    settings = Settings()
    mongo = settings.mongo.model_copy(
        update={k: v for k, v in (("uri", mongodb), ("database", database)) if v is not None}
    )
    settings = settings.model_copy(update={"mongo": mongo})
    runs = find_runs(paths, follow_symlinks=follow_symlinks)
    if not runs:
        err.print("nothing to ingest: no files found")
        return
    _print_plan(runs, settings, beamtime, instrument)
    if dry_run:
        return
    try:
        files = FileReader(
            compute_checksums=settings.compute_checksums,
            mappings=load_mappings(settings.metadata_mappings_dir),
        )
    except MappingError as error:
        err.print(f"[red]configuration:[/red] {error}")
        raise typer.Exit(2) from None
    try:
        refused = asyncio.run(_apply(runs, settings, files, beamtime, instrument, kafka))
    except Exception as error:
        err.print(
            f"[red]stopped:[/red] {error!r}; run the same command again to resume "
            "(what was applied is recognised and skipped)"
        )
        raise typer.Exit(1) from None
    if refused:
        err.print(f"[red]{refused} event(s) refused[/red]; the rest was ingested")
        raise typer.Exit(1)
    err.print(f"[green]✓[/green] {len(runs)} run(s) ingested into {settings.mongo.database}")


def register(root: typer.Typer) -> None:
    root.command("ingest")(ingest)
