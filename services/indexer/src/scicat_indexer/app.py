"""The indexer service: `catalogue.datasets` → OpenSearch, plus the dataset search API.

Run with `uvicorn scicat_indexer.app:create_app --factory` or `python -m scicat_indexer`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

import uvicorn
from fastapi import FastAPI
from opensearchpy.exceptions import TransportError
from prometheus_client import CollectorRegistry

from scicat_indexer import api, panosc_api
from scicat_indexer.auth import BEARER_RESPONSES, TokenVerifier, document_optional_bearer
from scicat_indexer.catalogue import MongoCatalogue
from scicat_indexer.handlers import dataset_batch_handler
from scicat_indexer.settings import SERVICE, Settings
from scicat_indexer.store import OpenSearchDatasetIndex
from scicat_schemas import units
from scicat_schemas.runtime.broker import create_broker
from scicat_schemas.runtime.consumer import ConsumerMetrics, ReliableConsumer
from scicat_schemas.runtime.garbage import settle_heap
from scicat_schemas.runtime.http import create_service_app
from scicat_schemas.runtime.logging import configure_logging
from scicat_schemas.topics import CATALOGUE_DATASETS


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app: OpenSearch client and index opened first, then the consumer; HTTP routes."""
    settings = settings or Settings()
    registry = CollectorRegistry()
    broker = create_broker(service=SERVICE, kafka=settings.kafka, registry=registry)
    consumer = ReliableConsumer(broker, SERVICE, settings.kafka, ConsumerMetrics(registry))
    index = OpenSearchDatasetIndex(settings.opensearch)
    catalogue = MongoCatalogue(settings.mongo)
    consumer.subscribe_batch(
        CATALOGUE_DATASETS,
        handler=dataset_batch_handler(
            index,
            catalogue,
            bulk_max_records=settings.bulk_max_records,
            time_budget=settings.kafka.batch_time_budget(),
        ),
        group_id=SERVICE,
        max_records=settings.batch_max_records,
    )

    @asynccontextmanager
    async def stores() -> AsyncIterator[None]:
        async with catalogue.connected(), index.connected():
            yield

    app: FastAPI = create_service_app(
        name=SERVICE,
        version=version("scicat-indexer"),
        broker=broker,
        registry=registry,
        resources=stores,
        checks={"opensearch": index.ready, "mongodb": catalogue.ping},
        description="Keeps the OpenSearch dataset index in step with `catalogue.datasets` "
        "and serves search over it. Without a bearer token only published datasets are "
        "visible; an OIDC token adds the datasets of its groups.",
    )
    app.state.dataset_index = index
    app.state.token_verifier = TokenVerifier(settings.oidc)
    app.state.catalogue = catalogue
    app.include_router(api.router, responses=BEARER_RESPONSES)
    document_optional_bearer(app)
    app.include_router(panosc_api.router)
    app.add_exception_handler(TransportError, api.index_failure)
    return app


def main() -> None:
    settings = Settings()
    configure_logging(SERVICE, settings.log_level)
    app = create_app(settings)
    settle_heap(units.registry)
    uvicorn.run(app, host=settings.http.host, port=settings.http.port, log_config=None)
