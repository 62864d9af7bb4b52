"""Fixtures of the doi-minter tests: a real DataCite stand-in over HTTP, seeded datasets, factories.

Helpers are handed out as fixtures because test modules are imported with `importlib` and cannot
import this file.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import structlog
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from fastapi import FastAPI
from pydantic import SecretStr
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from scicat_doi_minter.handlers import PublicationHandler
from scicat_doi_minter.registrar import DataCiteClient
from scicat_doi_minter.settings import DataCiteSettings, Settings
from scicat_doi_minter.store import MongoPublicationStore
from scicat_pipeline.embedded import free_port
from scicat_pipeline.standins.datacite import DataCiteStandin, create_app
from scicat_pipeline.testing import wait_for
from scicat_schemas.documents import DATASET_COLLECTION, Dataset
from scicat_schemas.events import (
    CloudEvent,
    Creator,
    PublicationRequested,
    PublicationRequestedData,
    encode,
)
from scicat_schemas.runtime.logging import configure_logging
from scicat_schemas.runtime.settings import KafkaSettings, MongoSettings

USERNAME = "DESY.SCICAT"
PASSWORD = "Tr0ub4dor&3-never-in-logs"
PREFIX = "10.5072"


@dataclass
class RunningStandin:
    """The DataCite stand-in served by uvicorn on a loopback port, plus its test hooks."""

    url: str
    app: FastAPI

    @property
    def state(self) -> DataCiteStandin:
        standin: DataCiteStandin = self.app.state.standin
        return standin

    async def add_faults(self, *faults: dict[str, Any]) -> None:
        async with httpx.AsyncClient(base_url=self.url) as client:
            response = await client.post("/_standin/faults", json=list(faults))
            response.raise_for_status()

    async def start_outage(self, seconds: float, status: int = 503) -> None:
        async with httpx.AsyncClient(base_url=self.url) as client:
            response = await client.post(
                "/_standin/outage", json={"seconds": seconds, "status": status}
            )
            response.raise_for_status()

    async def received(self) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.url) as client:
            response = await client.get("/_standin/requests")
            response.raise_for_status()
            return response.json()  # type: ignore[no-any-return]

    async def get_doi(self, doi: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url, auth=(USERNAME, PASSWORD)) as client:
            return await client.get(f"/dois/{doi}")


@pytest.fixture
def standin_port() -> int:
    """Chosen before the stand-in runs, so settings can name it without starting it."""
    port: int = free_port()
    return port


@asynccontextmanager
async def serve_standin(port: int) -> AsyncIterator[RunningStandin]:
    app = create_app(username=USERNAME, password=PASSWORD, prefix=PREFIX)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, lifespan="off", log_level="warning", access_log=False
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: _value(server.started), timeout=10, what="the DataCite stand-in")
        yield RunningStandin(url=f"http://127.0.0.1:{port}", app=app)
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def standin(standin_port: int) -> AsyncIterator[RunningStandin]:
    """A fresh stand-in per test, served for real so the production httpx client talks to it."""
    async with serve_standin(standin_port) as running:
        yield running


@pytest.fixture
def start_standin(
    standin_port: int,
) -> Callable[[], AbstractAsyncContextManager[RunningStandin]]:
    """The stand-in started when the test says so: DataCite down until then (connection refused)."""
    return lambda: serve_standin(standin_port)


@pytest.fixture
def datacite_settings(standin_port: int) -> DataCiteSettings:
    """The stand-in's account with quick retries, so the retry paths take milliseconds."""
    return DataCiteSettings(
        url=f"http://127.0.0.1:{standin_port}",
        username=USERNAME,
        password=SecretStr(PASSWORD),
        prefix=PREFIX,
        timeout_seconds=1.0,
        max_attempts=3,
        backoff_initial_seconds=0.01,
        backoff_max_seconds=0.05,
    )


@pytest.fixture
def minter_settings(
    datacite_settings: DataCiteSettings, mongo_uri: str, database_name: str
) -> Settings:
    """Settings without Kafka tuning; integration tests add `kafka=kafka_settings`."""
    return Settings(
        datacite=datacite_settings,
        mongo=MongoSettings(uri=mongo_uri, database=database_name, timeout_ms=3000),
        public_url="https://doi.example.org",
    )


@pytest.fixture
def app_settings(minter_settings: Settings, kafka_settings: KafkaSettings) -> Settings:
    return minter_settings.model_copy(update={"kafka": kafka_settings})


@pytest.fixture
async def mongo_db(mongo_uri: str, database_name: str) -> AsyncIterator[AsyncDatabase[Any]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        yield client[database_name]
    finally:
        await client.close()


def dataset(pid: str, **overrides: Any) -> Dataset:
    fields: dict[str, Any] = {
        "pid": pid,
        "datasetName": pid.rsplit("/", 1)[-1],
        "sourceFolder": f"/asap3/petra3/gpfs/p08/2025/data/11012345/raw/{pid.rsplit('/', 1)[-1]}",
        "size": 1_500_000_000,
        "numberOfFiles": 12,
        "creationTime": datetime(2025, 3, 4, 10, 0, tzinfo=UTC),
        "instrumentIds": ["p08"],
        "proposalIds": ["11012345"],
        "keywords": ["XRR"],
        "creationLocation": "/DESY/PETRA III/P08",
        "ownerGroup": "11012345-dmgt",
        "pipelineRevision": 3,
    }
    return Dataset.model_validate(fields | overrides)


@pytest.fixture
def seed_datasets(
    mongo_db: AsyncDatabase[Any],
) -> Callable[..., Awaitable[list[Dataset]]]:
    """Insert Dataset documents the way the ingestor stores them (`_id` = pid)."""

    async def seed(*pids: str, **overrides: Any) -> list[Dataset]:
        datasets = [dataset(pid, **overrides) for pid in pids]
        await mongo_db[DATASET_COLLECTION].insert_many(
            [{"_id": d.pid, **d.model_dump()} for d in datasets]
        )
        return datasets

    return seed


def publication_requested(
    publication_id: str = "P08-11012345-thin-films", *pids: str, **data: Any
) -> PublicationRequested:
    fields: dict[str, Any] = {
        "publication_id": publication_id,
        "dataset_pids": list(pids) or ["desy/p08/11012345/run-7"],
        "title": "Strain relaxation in <Ni> & Fe thin films",
        "abstract": "X-ray reflectivity of epitaxial films grown at 300 K.",
        "creators": [
            Creator(
                name="Doe, Jane",
                given_name="Jane",
                family_name="Doe",
                orcid="0000-0002-1825-0097",
                affiliation="Deutsches Elektronen-Synchrotron DESY",
                affiliation_ror="https://ror.org/01js2sh04",
            ),
            Creator(name="Roe, Richard", given_name="Richard", family_name="Roe"),
        ],
        "publication_year": 2025,
        "keywords": ["thin films"],
        "license": "https://creativecommons.org/licenses/by/4.0/",
    }
    return PublicationRequested(
        source="/desy/scicat/publication-ui",
        data=PublicationRequestedData.model_validate(fields | data),
    )


@pytest.fixture
def make_request() -> Callable[..., PublicationRequested]:
    return publication_requested


@pytest.fixture
def make_dataset() -> Callable[..., Dataset]:
    return dataset


async def produce(bootstrap: str, topic: str, key: str, *values: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()


@pytest.fixture
def produce_request(kafka: str) -> Callable[[PublicationRequested], Awaitable[None]]:
    async def send(event: PublicationRequested, times: int = 1) -> None:
        value = encode(event)
        await produce(kafka, "catalogue.publications", event.data.publication_id, *[value] * times)

    return send


class TopicReader:
    """Everything on a topic so far, read without a consumer group (all partitions)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
        )
        self.records: list[Any] = []

    async def poll(self) -> list[Any]:
        batch = await self.consumer.getmany(timeout_ms=100)
        for messages in batch.values():
            self.records.extend(messages)
        return self.records


@pytest.fixture
def topic_reader(kafka: str) -> Callable[[str], AbstractAsyncContextManager[TopicReader]]:
    @asynccontextmanager
    async def reader(topic: str) -> AsyncIterator[TopicReader]:
        topic_reader = TopicReader(kafka, topic)
        await topic_reader.consumer.start()
        try:
            yield topic_reader
        finally:
            await topic_reader.consumer.stop()

    return reader


@pytest.fixture
def json_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Production logging (structlog JSON, DEBUG) into a buffer; the previous set-up is restored."""
    buffer = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stderr", buffer)
        configure_logging("doi-minter", "DEBUG")
    try:
        yield buffer
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.reset_defaults()


@dataclass
class PublishedEvents:
    sent: list[tuple[str, str, Any]] = field(default_factory=list)

    async def publish(self, event: CloudEvent, *, topic: str, key: str) -> None:
        self.sent.append((topic, key, event))

    def types(self) -> list[str]:
        return [e.type for _, _, e in self.sent]


@dataclass
class Minter:
    handler: PublicationHandler
    events: PublishedEvents

    async def deliver(self, event: CloudEvent | bytes) -> None:
        value = event if isinstance(event, bytes) else encode(event)
        record: ConsumerRecord[Any, Any] = ConsumerRecord(
            "catalogue.publications", 0, 0, 0, 0, b"k", value, None, 0, len(value), []
        )
        await self.handler.on_publication_event(record)


@pytest.fixture
async def minter(minter_settings: Settings, standin: Any) -> AsyncIterator[Minter]:
    store = MongoPublicationStore(minter_settings.mongo)
    registrar = DataCiteClient(minter_settings.datacite, user_agent="test")
    events = PublishedEvents()
    async with store.opened(), registrar.opened():
        handler = PublicationHandler(
            settings=minter_settings, store=store, registrar=registrar, events=events
        )
        yield Minter(handler, events)


async def _value(value: Any) -> Any:
    return value
