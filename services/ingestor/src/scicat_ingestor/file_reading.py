"""What the ingestor learns by reading a closed file itself: its checksum and NeXus metadata.

Only when the file is readable from where the ingestor runs; otherwise the event is ingested as
sent. All reading is blocking, so `FileReader.read` runs it in a worker thread
(`asyncio.to_thread`) and the event loop keeps serving other partitions and health checks.

- Checksum: blake2b, computed when the producer sent none and checksumming is on
  (`INGESTOR_COMPUTE_CHECKSUMS`), read in chunks (`hashlib.file_digest`). Skipped when the size
  on disk differs from the event's: the file changed after it was closed, so its checksum would
  not describe the file the event announces.
- NeXus: the first mapping selecting the instrument and file name (`nexus_metadata`); the file's
  metadata is merged under the event's, so what the producer sent explicitly wins.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from scicat_ingestor.nexus_metadata import (
    FileContext,
    MetadataMapping,
    extract,
    select_mapping,
)
from scicat_ingestor.quantities import MetadataIssue
from scicat_ingestor.scientific_metadata import merge_scientific_metadata
from scicat_schemas.events import Checksum, FileClosedData

log = structlog.get_logger("scicat.ingestor.files")

CHECKSUM_ALGORITHM = "blake2b"


@dataclass(slots=True)  # never changed; not frozen, which costs ~2.5x to build per event
class FileReading:
    """The event as completed by reading the file, and the problems found doing so."""

    data: FileClosedData
    issues: list[MetadataIssue] = field(default_factory=list)


class Unread:
    """A file a batch's time budget left unread (`FileReader.read_many`)."""


UNREAD = Unread()


@dataclass(frozen=True)
class FileReader:
    compute_checksums: bool
    mappings: list[MetadataMapping]
    clock: Callable[[], float] = time.monotonic

    async def read(self, data: FileClosedData) -> FileReading:
        if not self._wants_checksum(data) and not self._mapping(data):
            return FileReading(data)
        return await asyncio.to_thread(self.read_blocking, data)

    async def read_many(
        self,
        events: Sequence[FileClosedData],
        *,
        concurrency: int,
        deadline: float | None = None,
    ) -> list[FileReading | Unread]:
        """`read` of each, in order: the files to read are split into `concurrency` shares, each
        read in one worker thread, so a batch costs a few thread hand-offs, not one per file.

        First, in one worker thread, each folder holding such a file is asked once whether it
        exists: an ingestor that does not mount the beamline's file system (the usual case in a
        cluster) then costs a batch one hand-off and one `stat` per run folder, rather than
        `concurrency` hand-offs and two `stat`s per file.

        `deadline` (on `clock`): no file is started after it, except the first one to read, so a
        batch always moves on; a file left unread is `UNREAD` (checksums of big files can take
        longer than a consumer may go without polling).
        """
        readings: list[FileReading | Unread] = [FileReading(data) for data in events]
        wanted = [
            n for n, data in enumerate(events) if self._wants_checksum(data) or self._mapping(data)
        ]
        if not wanted:
            return readings
        folders = {os.path.dirname(events[n].path) for n in wanted}
        present = await asyncio.to_thread(_existing_folders, folders)
        wanted = [n for n in wanted if os.path.dirname(events[n].path) in present]
        shares = [wanted[start::concurrency] for start in range(min(concurrency, len(wanted)))]
        first = wanted[0] if wanted else None

        def read_share(share: list[int]) -> list[FileReading | Unread]:
            read: list[FileReading | Unread] = []
            for n in share:
                late = deadline is not None and n != first and self.clock() >= deadline
                read.append(UNREAD if late else self.read_blocking(events[n]))
            return read

        done = await asyncio.gather(*(asyncio.to_thread(read_share, share) for share in shares))
        for share, share_readings in zip(shares, done, strict=True):
            for n, reading in zip(share, share_readings, strict=True):
                readings[n] = reading
        return readings

    def read_blocking(self, data: FileClosedData) -> FileReading:
        """The same as `read`, in the calling thread (for the `ingest` command and benchmarks)."""
        if not _readable(data.path):
            return FileReading(data)
        update: dict[str, object] = {}
        issues: list[MetadataIssue] = []
        if self._wants_checksum(data):
            checksum = _blake2b(data.path, data.size)
            if checksum is not None:
                update["checksum"] = checksum
        mapping = self._mapping(data)
        if mapping is not None:
            context = FileContext(
                path=data.path,
                run_id=data.run_id,
                beamtime_id=data.beamtime_id,
                instrument=data.instrument,
            )
            extracted = extract(mapping, context)
            update["metadata"] = merge_scientific_metadata(extracted.metadata, data.metadata)
            issues = extracted.issues
        return FileReading(data.model_copy(update=update), issues)

    def _wants_checksum(self, data: FileClosedData) -> bool:
        return self.compute_checksums and data.checksum is None

    def _mapping(self, data: FileClosedData) -> MetadataMapping | None:
        return select_mapping(self.mappings, instrument=data.instrument, path=data.path)


def _existing_folders(folders: set[str]) -> set[str]:
    return {folder for folder in folders if os.path.isdir(folder)}


def _readable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.R_OK)


def _blake2b(path: str, expected_size: int) -> Checksum | None:
    try:
        with open(path, "rb") as file:
            if os.fstat(file.fileno()).st_size != expected_size:
                log.info("file size on disk differs from the event; no checksum", path=path)
                return None
            digest = hashlib.file_digest(file, CHECKSUM_ALGORITHM)
    except OSError as error:
        log.warning("file could not be read for its checksum", path=path, error=repr(error))
        return None
    return Checksum(algorithm=CHECKSUM_ALGORITHM, value=digest.hexdigest())
