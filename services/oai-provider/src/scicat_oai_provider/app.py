"""The oai-provider service: consumes `catalogue.publications`, serves OAI-PMH 2.0 at `/oai`.

Run with `uvicorn scicat_oai_provider.app:create_app --factory` or `python -m scicat_oai_provider`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import structlog
import uvicorn
from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter
from pymongo.errors import PyMongoError
from starlette.datastructures import UploadFile
from starlette.middleware.gzip import GZipMiddleware

from scicat_oai_provider.handlers import PublicationHandler
from scicat_oai_provider.settings import Settings
from scicat_oai_provider.store import MongoOaiRecordStore
from scicat_oai_provider.tokens import TokenCodec
from scicat_oai_provider.verbs import Repository, respond
from scicat_schemas.runtime.broker import create_broker
from scicat_schemas.runtime.consumer import ConsumerMetrics, ReliableConsumer
from scicat_schemas.runtime.garbage import settle_heap
from scicat_schemas.runtime.http import create_service_app
from scicat_schemas.runtime.logging import configure_logging
from scicat_schemas.topics import CATALOGUE_PUBLICATIONS

SERVICE = "oai-provider"
VERSION = "0.1.0"
RETRY_AFTER_SECONDS = 30
"""Told to harvesters when MongoDB is unavailable; Sickle and metha honour 503 + Retry-After."""

log = structlog.get_logger("scicat.oai_provider")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    registry = CollectorRegistry()
    broker = create_broker(service=SERVICE, kafka=settings.kafka, registry=registry)
    consumer = ReliableConsumer(broker, SERVICE, settings.kafka, ConsumerMetrics(registry))
    store = MongoOaiRecordStore(settings.mongo)
    handler = PublicationHandler(
        store=store,
        repository_identifier=settings.repository_identifier,
        datacentre_symbol=settings.datacentre_symbol,
        facility=settings.facility,
        proposals=store,
    )
    consumer.subscribe(CATALOGUE_PUBLICATIONS, handler=handler.handle, group_id=SERVICE)
    repository = Repository.build(
        name=settings.repository_name,
        base_url=settings.base_url,
        admin_email=settings.admin_email,
        repository_identifier=settings.repository_identifier,
        page_size=settings.page_size,
        tokens=TokenCodec(
            settings.token_secret.get_secret_value(),
            ttl=timedelta(seconds=settings.token_ttl_seconds),
        ),
    )
    requests_total = Counter(
        "scicat_oai_requests_total",
        "OAI-PMH requests by verb and outcome (`ok` or the OAI error code).",
        ["verb", "outcome"],
        registry=registry,
    )

    @asynccontextmanager
    async def resources() -> AsyncIterator[None]:
        if settings.uses_dev_token_secret:
            log.warning(
                "resumption tokens are signed with the development secret; "
                "set OAI_PROVIDER_TOKEN_SECRET in production"
            )
        await store.open()
        try:
            yield
        finally:
            await store.close()

    app = create_service_app(
        name=SERVICE,
        version=VERSION,
        broker=broker,
        registry=registry,
        resources=resources,
        checks={"mongodb": store.ping},
        description="OAI-PMH 2.0 for published data (oai_dc, oai_datacite, datacite).",
    )
    # Level 6 rather than Starlette's 9: pages of XML compress almost as well, at half the CPU.
    app.add_middleware(GZipMiddleware, minimum_size=500, compresslevel=6)

    @app.exception_handler(PyMongoError)
    async def store_unavailable(request: Request, error: PyMongoError) -> Response:
        log.warning("OAI-PMH request failed: MongoDB unavailable", error=repr(error))
        return Response(
            "The record store is unavailable; retry later.\n",
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            media_type="text/plain",
        )

    @app.api_route(
        "/oai",
        methods=["GET", "POST"],
        tags=["OAI-PMH"],
        summary="OAI-PMH 2.0 base URL (GET query or POST form-encoded).",
        response_class=Response,
    )
    async def oai(request: Request) -> Response:
        now = datetime.now(UTC)
        if request.method == "POST":
            form = await request.form()
            items = [(k, v) for k, v in form.multi_items() if not isinstance(v, UploadFile)]
        else:
            items = request.query_params.multi_items()
        answer = await respond(items, repository=repository, store=store, now=now)
        outcome = answer.error_codes[0] if answer.error_codes else "ok"
        requests_total.labels(answer.verb, outcome).inc()
        return Response(answer.document, media_type="text/xml; charset=utf-8")

    return app


def main() -> None:
    settings = Settings()
    configure_logging(SERVICE, settings.log_level)
    app = create_app(settings)
    settle_heap()
    uvicorn.run(
        app,
        host=settings.http.host,
        port=settings.http.port,
        log_config=None,
        proxy_headers=True,
    )
