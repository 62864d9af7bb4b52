"""The doi-minter process: a Kafka consumer of publication requests and the landing-page server.

Run with `uvicorn scicat_doi_minter.app:create_app --factory` or `python -m scicat_doi_minter`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

import structlog
import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from scicat_doi_minter.handlers import PublicationHandler
from scicat_doi_minter.landing import landing_router
from scicat_doi_minter.publishing import KafkaEventPublisher
from scicat_doi_minter.registrar import DataCiteClient
from scicat_doi_minter.settings import SERVICE, Settings
from scicat_doi_minter.store import MongoPublicationStore
from scicat_schemas.runtime.broker import create_broker
from scicat_schemas.runtime.consumer import ConsumerMetrics, ReliableConsumer
from scicat_schemas.runtime.garbage import settle_heap
from scicat_schemas.runtime.http import create_service_app
from scicat_schemas.runtime.logging import configure_logging
from scicat_schemas.topics import CATALOGUE_PUBLICATIONS

VERSION = version("scicat-doi-minter")

log = structlog.get_logger("scicat.doi_minter")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # type: ignore[call-arg]  # required values come from the env
    registry = CollectorRegistry()
    broker = create_broker(service=SERVICE, kafka=settings.kafka, registry=registry)
    consumer = ReliableConsumer(broker, SERVICE, settings.kafka, ConsumerMetrics(registry))
    store = MongoPublicationStore(settings.mongo)
    registrar = DataCiteClient(
        settings.datacite,
        user_agent=f"scicat-pipeline/{VERSION} (doi-minter; +{settings.public_url})",
    )
    handler = PublicationHandler(
        settings=settings, store=store, registrar=registrar, events=KafkaEventPublisher(broker)
    )
    consumer.subscribe(CATALOGUE_PUBLICATIONS, handler=handler.on_publication_event)

    @asynccontextmanager
    async def resources() -> AsyncIterator[None]:
        async with store.opened(), registrar.opened():
            log.info(
                "doi-minter configured",
                datacite=settings.datacite.url,
                account=settings.datacite.username,
                prefix=settings.datacite.prefix,
                public_url=settings.public_url,
            )
            yield

    app: FastAPI = create_service_app(
        name=SERVICE,
        version=VERSION,
        broker=broker,
        registry=registry,
        resources=resources,
        checks={"mongodb": store.ping},
        description="Publication requests → DataCite DOIs, and the landing pages they resolve to.",
    )
    app.include_router(landing_router(store=store, settings=settings))
    return app


def main() -> None:
    settings = Settings()  # type: ignore[call-arg]
    configure_logging(SERVICE, settings.log_level)
    app = create_app(settings)
    settle_heap()
    uvicorn.run(app, host=settings.http.host, port=settings.http.port, log_config=None)
