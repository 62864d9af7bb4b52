"""The ingestion benchmark's backlog: the same files as our CloudEvents or as ASAP::O messages."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from scicat_schemas.events import (
    Checksum,
    FileClosed,
    FileClosedData,
    RunStarted,
    RunStartedData,
    encode,
)
from scicat_schemas.topics import ACQUISITION_EVENTS

START = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
BEAMTIME = "11019001"
SOURCE = "/bench/p08/detector"
METADATA = {
    "energy": {"value": 18.0, "unit": "keV"},
    "exposure_time": {"value": 0.1, "unit": "s"},
    "sample": {"name": "LaB6", "temperature": {"value": 295, "unit": "K"}},
}


def file_events(files: int, per_run: int, checksums: bool = False) -> list[tuple[bytes, bytes]]:
    """`(key, value)` of `files` realistic `file.closed` events, `per_run` files per run;
    `checksums`: each carries its writer's blake2b digest (as the ingestor stores for a file it
    can read)."""
    events = []
    for n in range(files):
        run = f"scan_{n // per_run:05d}"
        path = f"/asap3/petra3/gpfs/p08/2026/data/{BEAMTIME}/raw/{run}/img_{n:05d}.cbf"
        digest = hashlib.blake2b(path.encode()).hexdigest()
        data = FileClosedData(
            path=path,
            size=1_024_000 + n,
            closed_at=START + timedelta(milliseconds=n),
            instrument="P08",
            beamtime_id=BEAMTIME,
            run_id=run,
            metadata=METADATA,
            checksum=Checksum(algorithm="blake2b", value=digest) if checksums else None,
        )
        event = FileClosed(id=f"bench-{n}", source=SOURCE, data=data)
        events.append((run.encode(), encode(event)))
    return events


def grouped_events(
    files: int, per_run: int, runs_per_measurement: int
) -> list[tuple[bytes, bytes]]:
    """`file_events`, each run opened by a `run.started` naming its measurement (`m0000`,
    `m0001`, ... of `runs_per_measurement` runs each) under the key `measurement`."""
    events = []
    for n, (key, value) in enumerate(file_events(files, per_run)):
        if n % per_run == 0:
            run = n // per_run
            data = RunStartedData(
                run_id=key.decode(),
                beamtime_id=BEAMTIME,
                instrument="P08",
                started_at=START + timedelta(milliseconds=n),
                metadata=METADATA | {"measurement": f"m{run // runs_per_measurement:04d}"},
            )
            events.append(
                (key, encode(RunStarted(id=f"bench-start-{run}", source=SOURCE, data=data)))
            )
        events.append((key, value))
    return events


def asapo_messages(files: int, per_run: int) -> list[tuple[bytes, bytes]]:
    """The same files as `file_events`, as ASAP::O message metadata on `asapo.messages`: a
    stream per run, paths relative to the beamtime folder, ns timestamps (`adapters.asapo`)."""
    core_path = f"/asap3/petra3/gpfs/p08/2026/data/{BEAMTIME}"
    messages = []
    for n in range(files):
        run = f"scan_{n // per_run:05d}"
        closed_ns = int((START + timedelta(milliseconds=n)).timestamp()) * 10**9 + n * 10**6
        record = {
            "beamtime": BEAMTIME,
            "beamline": "p08",
            "data_source": "detector",
            "stream": run,
            "core_path": core_path,
            "message": {
                "_id": n % per_run + 1,
                "name": f"raw/{run}/img_{n:05d}.cbf",
                "size": 1_024_000 + n,
                "timestamp": closed_ns,
                "meta": METADATA,
            },
        }
        messages.append((run.encode(), json.dumps(record).encode()))
    return messages


Messages = Callable[[int, int, bool], list[tuple[bytes, bytes]]]

PRODUCERS: dict[str, tuple[str, str, Messages]] = {
    "cloudevents": (ACQUISITION_EVENTS, "ingestor", file_events),
    "asapo": ("asapo.messages", "ingestor-native", lambda f, r, _: asapo_messages(f, r)),
}
"""`--producer`: the topic the backlog goes to, the consumer group reading it, its messages
(ASAP::O message metadata carries no checksum)."""
