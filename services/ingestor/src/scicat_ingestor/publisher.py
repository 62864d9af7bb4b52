"""Publishing what the ingestor stored: `dataset.stored` on `catalogue.datasets`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from faststream.kafka import KafkaBroker

from scicat_schemas.documents import Dataset
from scicat_schemas.events import DatasetStored, DatasetStoredData, encode
from scicat_schemas.topics import CATALOGUE_DATASETS

CLOUDEVENTS_JSON = "application/cloudevents+json"
"""Content type of a structured-mode CloudEvent (CloudEvents Kafka protocol binding)."""


def dataset_stored_event(dataset: Dataset, *, source: str) -> DatasetStored:
    """The `dataset.stored` event for a stored revision; the same revision gives the same event.

    The id is `<pid>#<revision>` and the time is `updatedAt`, so a re-publish after a crash is
    byte-for-byte the first publish and downstream recognises it as a redelivery.
    """
    return DatasetStored(
        id=f"{dataset.pid}#{dataset.pipelineRevision}",
        source=source,
        subject=dataset.pid,
        time=dataset.updatedAt or dataset.creationTime,
        data=DatasetStoredData(dataset=dataset),
    )


class DatasetEvents(Protocol):
    async def dataset_stored(self, dataset: Dataset) -> None:
        """Return only once the event is durably published."""
        ...

    async def datasets_stored(self, datasets: Sequence[Dataset]) -> None:
        """`dataset_stored` for each, in order; return once all are durable."""
        ...


@dataclass
class KafkaDatasetEvents:
    """`DatasetEvents` on Kafka; the key is the pid, so one dataset's revisions stay in order."""

    broker: KafkaBroker
    source: str

    async def dataset_stored(self, dataset: Dataset) -> None:
        await self.datasets_stored([dataset])

    async def datasets_stored(self, datasets: Sequence[Dataset]) -> None:
        """Queue every event first, in order, then wait for all acknowledgements at once.

        The producer keeps the order of what it queued per partition (one request in flight
        per partition), and one dataset's events share a key, hence a partition.
        """
        pending = [
            await self.broker.publish(
                encode(dataset_stored_event(dataset, source=self.source)),
                topic=CATALOGUE_DATASETS,
                key=dataset.pid.encode(),
                headers={"content-type": CLOUDEVENTS_JSON},
                no_confirm=True,
            )
            for dataset in datasets
        ]
        await asyncio.gather(*pending)


class CountedDatasetEvents:
    """`DatasetEvents` that only count: back-filling without Kafka (`scicat-pipeline ingest`)
    and benchmarks that measure the store, not the broker."""

    def __init__(self) -> None:
        self.count = 0

    async def dataset_stored(self, dataset: Dataset) -> None:
        self.count += 1

    async def datasets_stored(self, datasets: Sequence[Dataset]) -> None:
        self.count += len(datasets)
