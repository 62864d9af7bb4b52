"""The ingestor as a web service: the Kafka consumer runs inside the FastAPI lifespan.

Run with `uvicorn scicat_ingestor.app:create_app --factory` or `python -m scicat_ingestor`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from importlib.metadata import version

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from scicat_ingestor.batch import BatchIngestor
from scicat_ingestor.file_reading import FileReader
from scicat_ingestor.handlers import AcquisitionHandler
from scicat_ingestor.native import (
    MongoBlueskyRuns,
    NativeHandlers,
    NativeMetrics,
    with_bluesky_runs,
)
from scicat_ingestor.nexus_metadata import load_mappings
from scicat_ingestor.publisher import KafkaDatasetEvents
from scicat_ingestor.run_timeout import QuietRunCloser
from scicat_ingestor.settings import Settings
from scicat_ingestor.store import MongoCatalogueStore
from scicat_schemas import units
from scicat_schemas.runtime.broker import create_broker
from scicat_schemas.runtime.consumer import ConsumerMetrics, ReliableConsumer
from scicat_schemas.runtime.garbage import settle_heap
from scicat_schemas.runtime.http import create_service_app
from scicat_schemas.runtime.logging import configure_logging
from scicat_schemas.topics import ACQUISITION_EVENTS, PROPOSALS_EVENTS

SERVICE = "ingestor"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    registry = CollectorRegistry()
    broker = create_broker(service=SERVICE, kafka=settings.kafka, registry=registry)
    store = MongoCatalogueStore(
        settings.mongo,
        marker_retention=settings.marker_retention(),
        datablock_max_files=settings.datablock_max_files,
        fence_window=settings.fence_window(),
    )
    dataset_events = KafkaDatasetEvents(broker=broker, source=settings.source)
    handler = AcquisitionHandler(
        store=store,
        events=dataset_events,
        policy=settings.policy(),
        files=FileReader(
            compute_checksums=settings.compute_checksums,
            mappings=load_mappings(settings.metadata_mappings_dir),
        ),
    )
    closer = QuietRunCloser(
        store=store,
        events=dataset_events,
        quiet_period=timedelta(seconds=settings.run_quiet_period_seconds),
        scan_interval=settings.run_scan_interval_seconds,
    )
    consumer = ReliableConsumer(broker, SERVICE, settings.kafka, ConsumerMetrics(registry))
    batches = BatchIngestor(
        handler,
        store,
        dataset_events,
        file_read_concurrency=settings.file_read_concurrency,
        time_budget=settings.kafka.batch_time_budget(),
    )
    consumer.subscribe_batch(
        ACQUISITION_EVENTS,
        PROPOSALS_EVENTS,
        handler=batches.handle_batch,
        group_id=SERVICE,
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
    )
    bluesky_runs = MongoBlueskyRuns(settings.mongo)
    NativeHandlers(
        apply=batches.apply_in_order, runs=bluesky_runs, metrics=NativeMetrics(registry)
    ).subscribe(
        consumer,
        settings.native_topics,
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
    )

    @asynccontextmanager
    async def resources() -> AsyncIterator[None]:
        async with store.connected(), closer.running():
            yield

    app = create_service_app(
        name=SERVICE,
        version=version("scicat-ingestor"),
        broker=broker,
        registry=registry,
        resources=with_bluesky_runs(resources, bluesky_runs),
        checks={"mongodb": store.ping},
        description="Acquisition events → SciCat datasets and file lists in MongoDB.",
    )
    app.state.settings = settings
    app.state.store = store
    return app


def main() -> None:
    settings = Settings()
    configure_logging(SERVICE, settings.log_level)
    app = create_app(settings)
    settle_heap(units.registry)
    uvicorn.run(
        app,
        host=settings.http.host,
        port=settings.http.port,
        log_config=None,
    )
