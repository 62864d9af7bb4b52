"""Factories and a running indexer on the embedded stack, shared by the indexer's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from scicat_indexer.app import create_app
from scicat_indexer.auth import Principal, current_principal
from scicat_indexer.settings import OpenSearchSettings, Settings
from scicat_pipeline.testing import wait_for
from scicat_schemas.documents import Dataset
from scicat_schemas.events import (
    DatasetDeleted,
    DatasetDeletedData,
    DatasetStored,
    DatasetStoredData,
    encode,
)
from scicat_schemas.runtime.settings import KafkaSettings, MongoSettings
from scicat_schemas.topics import CATALOGUE_DATASETS, dead_letter_topic

BASE_TIME = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def _make_dataset(
    run: str = "scan_001", *, beamtime: str = "11012345", hours: int = 0, **fields: Any
) -> Dataset:
    """A raw P08 dataset; `hours` shifts its creationTime so tests can control the order."""
    values: dict[str, Any] = {
        "pid": f"local/{beamtime}/{run}",
        "datasetName": run,
        "sourceFolder": f"/asap3/petra3/gpfs/p08/2025/data/{beamtime}/raw/{run}",
        "creationTime": BASE_TIME + timedelta(hours=hours),
        "creationLocation": "/DESY/P08",
        "ownerGroup": beamtime,
        "accessGroups": ["p08staff"],
        "proposalIds": [beamtime],
        "instrumentIds": ["P08"],
        "pipelineRevision": 1,
        "scientificMetadata": {"sample": {"temperature": {"value": 295.5, "unit": "K"}}},
    }
    values.update(fields)
    return Dataset.model_validate(values)


def _stored_event(dataset: Dataset, *, event_id: str | None = None) -> bytes:
    event = DatasetStored(source="/tests/ingestor", data=DatasetStoredData(dataset=dataset))
    if event_id is not None:
        event.id = event_id
    return encode(event)


def _deleted_event(pid: str, revision: int) -> bytes:
    return encode(
        DatasetDeleted(
            source="/tests/ingestor", data=DatasetDeletedData(pid=pid, revision=revision)
        )
    )


@dataclass
class RunningIndexer:
    """The indexer app with its lifespan running, and ways to feed and observe it."""

    app: FastAPI
    http: httpx.AsyncClient
    bootstrap_servers: str

    async def produce(self, *values: tuple[str, bytes]) -> None:
        """Send `(key, value)` pairs to `catalogue.datasets`, in order, as a producer would."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers)
        await producer.start()
        try:
            for key, value in values:
                await producer.send_and_wait(CATALOGUE_DATASETS, value, key=key.encode())
        finally:
            await producer.stop()

    async def outcomes(self) -> dict[str, float]:
        """Messages per outcome (`ok`, `dead-lettered`), from the consumer's /metrics."""
        text = (await self.http.get("/metrics")).text
        counts: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            if family.name != "scicat_messages_processed":
                continue
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    outcome = sample.labels["outcome"]
                    counts[outcome] = counts.get(outcome, 0) + sample.value
        return counts

    async def processed(self) -> float:
        """Messages that reached an outcome (indexed, ignored or dead-lettered)."""
        return sum((await self.outcomes()).values())

    async def wait_processed(self, count: int) -> None:
        async def enough() -> bool:
            return await self.processed() >= count

        await wait_for(enough, what=f"{count} processed messages")

    async def search(self, **params: Any) -> dict[str, Any]:
        response = await self.http.get("/datasets", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait_total(self, total: int, **params: Any) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            page = await self.search(**params)
            return page if page["total"] == total else None

        page = await wait_for(reached, what=f"{total} datasets matching {params}")
        assert page is not None
        return page

    async def dead_letters(self, expected: int) -> list[ConsumerRecord[Any, Any]]:
        consumer = AIOKafkaConsumer(
            dead_letter_topic("indexer"),
            bootstrap_servers=self.bootstrap_servers,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        records: list[ConsumerRecord[Any, Any]] = []
        try:

            async def enough() -> bool:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
                return len(records) >= expected

            await wait_for(enough, what=f"{expected} dead letters")
        finally:
            await consumer.stop()
        return records


@pytest.fixture
def make_dataset() -> Callable[..., Dataset]:
    """Factory of datasets (pytest's importlib mode keeps conftest out of `import`)."""
    return _make_dataset


@pytest.fixture
def stored_event() -> Callable[..., bytes]:
    return _stored_event


@pytest.fixture
def deleted_event() -> Callable[..., bytes]:
    return _deleted_event


@pytest.fixture
def indexer_settings(
    kafka_settings: KafkaSettings, opensearch_url: str, mongo_uri: str, database_name: str
) -> Settings:
    return Settings(
        kafka=kafka_settings,
        opensearch=OpenSearchSettings(url=opensearch_url),
        mongo=MongoSettings(uri=mongo_uri, database=database_name),
    )


STAFF = Principal(subject="p08-scientist", groups=frozenset({"p08staff"}))
"""Sees the factory's datasets (`accessGroups: [p08staff]`) whether published or not."""


@pytest.fixture
def indexer_principal() -> Principal:
    """Who the `indexer` fixture's HTTP client is (access control is tested in its own files)."""
    return STAFF


@pytest.fixture
async def indexer(
    indexer_settings: Settings, indexer_principal: Principal
) -> AsyncIterator[RunningIndexer]:
    app = create_app(indexer_settings)
    app.dependency_overrides[current_principal] = lambda: indexer_principal
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            yield RunningIndexer(app, http, indexer_settings.kafka.bootstrap_servers)
