"""Publishing what the ingestor stored: `dataset.stored` on `catalogue.datasets`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from faststream.kafka import KafkaBroker

from scicat_ingestor.domain import dataset_stored_event
from scicat_schemas.documents import Dataset
from scicat_schemas.events import encode
from scicat_schemas.topics import CATALOGUE_DATASETS

CLOUDEVENTS_JSON = "application/cloudevents+json"
"""Content type of a structured-mode CloudEvent (CloudEvents Kafka protocol binding)."""


class DatasetEvents(Protocol):
    async def dataset_stored(self, dataset: Dataset) -> None:
        """Return only once the event is durably published."""
        ...


@dataclass
class KafkaDatasetEvents:
    """`DatasetEvents` on Kafka; the key is the pid, so one dataset's revisions stay in order."""

    broker: KafkaBroker
    source: str

    async def dataset_stored(self, dataset: Dataset) -> None:
        event = dataset_stored_event(dataset, source=self.source)
        await self.broker.publish(
            encode(event),
            topic=CATALOGUE_DATASETS,
            key=dataset.pid.encode(),
            headers={"content-type": CLOUDEVENTS_JSON},
        )
