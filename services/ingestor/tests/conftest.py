"""Factories for acquisition events and helpers to run the ingestor on the embedded stack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from scicat_ingestor.app import create_app
from scicat_ingestor.batch import BatchIngestor
from scicat_ingestor.handlers import AcquisitionHandler
from scicat_ingestor.ingest_policy import IngestPolicy
from scicat_ingestor.settings import Settings
from scicat_ingestor.store import MongoCatalogueStore
from scicat_pipeline.testing import wait_for
from scicat_pipeline.testing.records import consumer_record
from scicat_schemas.documents import Dataset
from scicat_schemas.events import (
    BeamtimeUpdated,
    BeamtimeUpdatedData,
    CloudEvent,
    FileClosed,
    FileClosedData,
    Person,
    RunStarted,
    RunStartedData,
    RunStopped,
    RunStoppedData,
    encode,
)
from scicat_schemas.runtime.settings import KafkaSettings, MongoSettings
from scicat_schemas.topics import ACQUISITION_EVENTS

T0 = datetime(2024, 5, 14, 9, 30, tzinfo=UTC)
INGESTED_AT = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


class Acquisitions:
    """Event payloads of one run with sensible defaults; keyword arguments override fields."""

    beamtime = "11012345"
    run = "scan_0042"
    instrument = "P08"
    folder = "/gpfs/current/raw/scan_0042"
    producer = "/desy/p08/sardana"

    @staticmethod
    def at(seconds: float) -> datetime:
        return T0 + timedelta(seconds=seconds)

    def pid(self, prefix: str = "test") -> str:
        return f"{prefix}/{self.beamtime}/{self.run}"

    def run_started(self, **overrides: Any) -> RunStartedData:
        fields = {"started_at": self.at(0), "source_folder": self.folder} | overrides
        return RunStartedData(**self._ref(fields))

    def file_closed(self, name: str = "a.h5", **overrides: Any) -> FileClosedData:
        fields = {"path": f"{self.folder}/{name}", "size": 100, "closed_at": self.at(10)}
        return FileClosedData(**self._ref(fields | overrides))

    def run_stopped(self, **overrides: Any) -> RunStoppedData:
        return RunStoppedData(**self._ref({"stopped_at": self.at(60)} | overrides))

    def envelope(
        self, data: RunStartedData | FileClosedData | RunStoppedData, **attributes: Any
    ) -> bytes:
        """The wire form of `data` as a producer sends it (a fresh event id unless given)."""
        model: type[CloudEvent]
        if isinstance(data, RunStartedData):
            model = RunStarted
        elif isinstance(data, FileClosedData):
            model = FileClosed
        else:
            model = RunStopped
        return encode(model(**{"source": self.producer, "data": data} | attributes))

    def beamtime_updated(self, **overrides: Any) -> bytes:
        """The wire form of a DOOR `beamtime.updated` for this beamtime."""
        fields = {
            "beamtime_id": self.beamtime,
            "proposal_id": "20230042",
            "beamline": "p08",
            "title": "Thin films under strain",
            "facility": "PETRA III",
            "principal_investigator": Person(email="pi@uni.example", lastname="Curie"),
            "start": datetime(2024, 5, 14, 8, 0, tzinfo=UTC),
            "core_path": f"/asap3/petra3/gpfs/p08/2024/data/{self.beamtime}",
        }
        data = BeamtimeUpdatedData(**(fields | overrides))
        return encode(BeamtimeUpdated(source="/desy/door", data=data))

    def _ref(self, fields: dict[str, Any]) -> dict[str, Any]:
        ref = {"run_id": self.run, "beamtime_id": self.beamtime, "instrument": self.instrument}
        return ref | fields


@dataclass
class KafkaIO:
    """Producing to and reading from the test's broker with plain aiokafka clients."""

    bootstrap: str

    async def produce(self, *values: bytes, key: bytes = Acquisitions.run.encode()) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await producer.start()
        try:
            for value in values:
                await producer.send_and_wait(ACQUISITION_EVENTS, value, key=key)
        finally:
            await producer.stop()

    async def read(self, topic: str, expected: int) -> list[ConsumerRecord[Any, Any]]:
        """At least `expected` records of `topic`, read from the beginning."""
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=self.bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        records: list[ConsumerRecord[Any, Any]] = []
        try:

            async def enough() -> bool:
                batch = await consumer.getmany(timeout_ms=200)
                for messages in batch.values():
                    records.extend(messages)
                return len(records) >= expected

            await wait_for(enough, what=f"{expected} records on {topic}")
        finally:
            await consumer.stop()
        return records


@pytest.fixture
def acquisitions() -> Acquisitions:
    return Acquisitions()


@pytest.fixture
def kafka_io(kafka: str) -> KafkaIO:
    return KafkaIO(kafka)


@pytest.fixture
def policy() -> IngestPolicy:
    return Settings(pid_prefix="test").policy()


@pytest.fixture
def settings(kafka_settings: KafkaSettings, mongo_uri: str, database_name: str) -> Settings:
    return Settings(
        kafka=kafka_settings,
        mongo=MongoSettings(uri=mongo_uri, database=database_name),
        pid_prefix="test",
    )


@pytest.fixture
async def catalogue(mongo_uri: str, database_name: str) -> AsyncIterator[AsyncDatabase[Any]]:
    """The test's database, seen through a client of its own (as SciCat would see it)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        yield client[database_name]
    finally:
        await client.close()


@pytest.fixture
async def ingestor(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The ingestor running (lifespan entered, consumer started), with an HTTP client for it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


class NothingPublished:
    """`DatasetEvents` and `BatchEvents` that drop what they get, for tests of the store."""

    async def dataset_stored(self, dataset: Any) -> None:
        pass

    async def datasets_stored(self, datasets: Any) -> None:
        pass


def batch_ingesting(store: Any, policy: IngestPolicy) -> Any:
    """`handle_batch` of a `BatchIngestor` on `store`, given record values (on
    `acquisition.events`) or `(topic, value)` pairs, numbered in order."""
    handler = AcquisitionHandler(
        store=store, events=NothingPublished(), policy=policy, clock=lambda: INGESTED_AT
    )
    batcher = BatchIngestor(handler, store, NothingPublished())

    async def ingesting(*values: bytes | tuple[str, bytes]) -> list[Any]:
        records = [
            consumer_record(*(v if isinstance(v, tuple) else (ACQUISITION_EVENTS, v)), offset=n)
            for n, v in enumerate(values)
        ]
        return await batcher.handle_batch(records)

    return ingesting


@pytest.fixture
def batch_ingest_into(policy: IngestPolicy) -> Any:
    """`batch_ingesting` with the test policy: `batch_ingest_into(store)(*values)`."""
    return lambda store: batch_ingesting(store, policy)


@pytest.fixture
def nothing_published() -> NothingPublished:
    return NothingPublished()


class Published:
    """`DatasetEvents` and `BatchEvents` that keep what they get, in order."""

    def __init__(self) -> None:
        self.stored: list[Dataset] = []

    async def dataset_stored(self, dataset: Dataset) -> None:
        self.stored.append(dataset)

    async def datasets_stored(self, datasets: list[Dataset]) -> None:
        self.stored.extend(datasets)

    def ids(self) -> list[str]:
        return [f"{d.pid}#{d.pipelineRevision}" for d in self.stored]


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
async def fenced_store(mongo_uri: str, database_name: str) -> AsyncIterator[MongoCatalogueStore]:
    """A store that records batches of Kafka records by their offsets (`DEDUPLICATION=offsets`,
    refusals kept 100 offsets back)."""
    async with MongoCatalogueStore(
        MongoSettings(uri=mongo_uri, database=database_name), fence_window=100
    ).connected() as opened:
        yield opened


@pytest.fixture
def fenced_ingest(fenced_store: MongoCatalogueStore, published: Published, policy: IngestPolicy):
    """`handle_batch` into `fenced_store` of `(offset, value)` records of partition 0, as the
    consumer hands them."""
    handler = AcquisitionHandler(
        store=fenced_store, events=published, policy=policy, clock=lambda: INGESTED_AT
    )
    batcher = BatchIngestor(handler, fenced_store, published)

    async def ingesting(*records: tuple[int, bytes]) -> list[Any]:
        return await batcher.handle_batch(
            [
                consumer_record(ACQUISITION_EVENTS, value, offset=offset, key=b"scan_0042")
                for offset, value in records
            ]
        )

    return ingesting
