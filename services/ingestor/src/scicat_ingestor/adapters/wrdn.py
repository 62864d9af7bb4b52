"""ESS file-writer "finished writing" (`wrdn` flatbuffers) → `file.closed` + `run.stopped`.

The file-writer (kafka-to-nexus) echoes the `metadata` JSON of the job's `pl72` run start; the
experiment control puts the proposal there, so that is where the beamtime id comes from
(`proposal_id`, `proposalId` or `proposal`) and the instrument (`instrument_name` or
`instrument`). The rest of that JSON becomes the event's scientific metadata.

One job writes one file, so the job id is the run id, and "finished writing" also ends the run:
each wrdn becomes `file.closed` then `run.stopped` (success). wrdn carries no size, checksum or
time: the adapter takes the Kafka record time as `closed_at` and leaves `size` at 0 for the
native handler to fill from the file when it is readable.

A message with `error_encountered` is not ingested (the file may be incomplete): the adapter
returns a `WriteFailed` that the native handler counts and logs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streaming_data_types import deserialise_wrdn
from streaming_data_types.finished_writing_wrdn import FILE_IDENTIFIER

from scicat_ingestor.adapters.common import BrokenMessage, NotThisKind, event_id
from scicat_schemas.events import FileClosed, FileClosedData, RunStopped, RunStoppedData

PROPOSAL_KEYS = ("proposal_id", "proposalId", "proposal")
INSTRUMENT_KEYS = ("instrument_name", "instrument")


@dataclass(frozen=True)
class WriteFailed:
    """The file-writer reported an error for this job; the file is not ingested."""

    service_id: str
    job_id: str
    file_name: str
    message: str


def source_of(service_id: str) -> str:
    return f"/ess/file-writer/{service_id or 'unknown'}"


def from_wrdn(
    buffer: bytes | None, *, received_at: datetime
) -> list[FileClosed | RunStopped] | WriteFailed:
    """Decode one record value of the file-writer status topic.

    Raises `NotThisKind` for any other flatbuffer schema on that topic (`answ`, `x5f2` status,
    `pl72`...), `BrokenMessage` for a wrdn that cannot be decoded or names no proposal.
    """
    if buffer is None or len(buffer) < 8:
        raise NotThisKind("not a flatbuffer: shorter than 8 bytes")
    if buffer[4:8] != FILE_IDENTIFIER:
        raise NotThisKind(f"flatbuffer schema {bytes(buffer[4:8])!r}, not wrdn")
    try:
        finished = deserialise_wrdn(buffer)
    except Exception as error:
        raise BrokenMessage(f"wrdn flatbuffer cannot be decoded: {error!r}") from error
    if not finished.job_id or not finished.file_name:
        raise BrokenMessage("wrdn message without job_id or file_name; nothing to ingest")
    if finished.error_encountered:
        return WriteFailed(
            service_id=finished.service_id,
            job_id=finished.job_id,
            file_name=finished.file_name,
            message=finished.message or "(no message)",
        )
    metadata = _metadata(finished.metadata, job_id=finished.job_id)
    beamtime_id = _first(metadata, PROPOSAL_KEYS, what="proposal id", job_id=finished.job_id)
    instrument = _first(metadata, INSTRUMENT_KEYS, what="instrument", job_id=finished.job_id)
    scientific = {k: v for k, v in metadata.items() if k not in PROPOSAL_KEYS + INSTRUMENT_KEYS}
    ref = {"run_id": finished.job_id, "beamtime_id": beamtime_id, "instrument": instrument}
    source = source_of(finished.service_id)
    return [
        FileClosed(
            id=event_id("wrdn", finished.job_id, finished.file_name),
            source=source,
            time=received_at,
            subject=finished.file_name,
            data=FileClosedData(
                **ref,
                path=finished.file_name,
                size=0,
                closed_at=received_at,
                metadata=scientific,
            ),
        ),
        RunStopped(
            id=event_id("wrdn", finished.job_id, "stopped"),
            source=source,
            time=received_at,
            data=RunStoppedData(**ref, stopped_at=received_at, status="success"),
        ),
    ]


def _metadata(text: str | None, *, job_id: str) -> dict[str, Any]:
    if not text:
        raise BrokenMessage(
            f"wrdn of job {job_id!r} has no metadata JSON; the run start (pl72) must carry "
            f'metadata like {{"proposal_id": "...", "instrument_name": "..."}}'
        )
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as error:
        raise BrokenMessage(
            f"wrdn of job {job_id!r} has metadata that is not JSON: {error}"
        ) from error
    if not isinstance(metadata, dict):
        raise BrokenMessage(f"wrdn of job {job_id!r} has metadata that is not a JSON object")
    return metadata


def _first(metadata: dict[str, Any], keys: tuple[str, ...], *, what: str, job_id: str) -> str:
    for key in keys:
        value = metadata.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    raise BrokenMessage(
        f"wrdn of job {job_id!r} names no {what}: its metadata JSON needs one of "
        f"{', '.join(keys)} (a non-empty string)"
    )
