"""`beamtime.updated` over a beamtime of many datasets (DESY: a beamtime holds thousands of scans).

Prints one table; nothing is asserted. The datasets are ingested first (one file each, before
their beamtime is known), then three updates of the beamtime are applied through the ingestor's
handler on the embedded SecantusDB (or `--mongodb URI`): the first, which completes every
dataset; the same DOOR export sent again with a new title, which changes no dataset; and a move
to another beamline, which changes every dataset's groups and their file lists' groups. Each row
gives the time the update took and how many `dataset.stored` it announced.

    uv run --frozen python bench/beamtime_benchmark.py [--datasets 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import timedelta

from aiokafka import ConsumerRecord
from ingest_messages import BEAMTIME, START, file_events
from rich.console import Console
from rich.table import Table

from scicat_ingestor.batch import BatchIngestor
from scicat_ingestor.handlers import AcquisitionHandler
from scicat_ingestor.publisher import CountedDatasetEvents
from scicat_ingestor.settings import Settings
from scicat_ingestor.store import MongoCatalogueStore
from scicat_pipeline.embedded import EmbeddedMongo
from scicat_schemas.events import BeamtimeUpdated, BeamtimeUpdatedData, Person, encode
from scicat_schemas.runtime.settings import MongoSettings
from scicat_schemas.topics import ACQUISITION_EVENTS, PROPOSALS_EVENTS


def beamtime_update(**changes: str) -> bytes:
    data = BeamtimeUpdatedData(
        beamtime_id=BEAMTIME,
        proposal_id="20260001",
        beamline=changes.get("beamline", "p08"),
        title=changes.get("title", "Strain in thin films"),
        facility="PETRA III",
        principal_investigator=Person(email="pi@uni.example", lastname="Curie"),
        start=START,
        core_path=f"/asap3/petra3/gpfs/p08/2026/data/{BEAMTIME}",
    )
    return encode(BeamtimeUpdated(source="/desy/door", data=data))


def record(topic: str, offset: int, value: bytes, key: bytes = b"") -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, 0, offset, 0, 0, key, value, None, len(key), len(value), [])


async def measure(uri: str, datasets: int) -> list[tuple[str, float, int]]:
    settings = Settings(pid_prefix="bench", mongo=MongoSettings(uri=uri, database="bench_beamtime"))
    events = CountedDatasetEvents()  # the update's own cost, not the broker's
    rows = []
    async with MongoCatalogueStore(
        settings.mongo, marker_retention=timedelta(0)
    ).connected() as store:
        handler = AcquisitionHandler(store=store, events=events, policy=settings.policy())
        ingestor = BatchIngestor(handler, store, events)
        backlog = file_events(datasets, 1)
        for start in range(0, len(backlog), 500):
            chunk = backlog[start : start + 500]
            await ingestor.handle_batch(
                [record(ACQUISITION_EVENTS, start + n, v, k) for n, (k, v) in enumerate(chunk)]
            )
        updates = [
            ("first update (completes every dataset)", beamtime_update()),
            ("sent again, new title (no dataset changes)", beamtime_update(title="Strain, again")),
            ("moved to p10 (groups of every dataset change)", beamtime_update(beamline="p10")),
        ]
        for offset, (what, value) in enumerate(updates):
            events.count = 0
            began = time.perf_counter()
            await ingestor.handle_batch([record(PROPOSALS_EVENTS, offset, value)])
            rows.append((what, time.perf_counter() - began, events.count))
    return rows


async def main(arguments: argparse.Namespace) -> None:
    embedded = None if arguments.mongodb else EmbeddedMongo().start()
    try:
        uri = arguments.mongodb or (embedded.uri if embedded else "")
        rows = await measure(uri, arguments.datasets)
    finally:
        if embedded is not None:
            embedded.stop()
    table = Table(title=f"beamtime.updated over {arguments.datasets:,} datasets of one beamtime")
    for column in ("update", "seconds", "datasets/s", "dataset.stored announced"):
        table.add_column(column)
    for what, seconds, announced in rows:
        table.add_row(
            what, f"{seconds:.2f}", f"{arguments.datasets / seconds:,.0f}", f"{announced:,}"
        )
    Console().print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=2000, help="datasets in the beamtime")
    parser.add_argument("--mongodb", help="an external MongoDB (replica set) URI")
    asyncio.run(main(parser.parse_args()))
