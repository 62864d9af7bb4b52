"""The HTTP face every service shares: `/healthz`, `/readyz`, `/metrics`, and the lifespan.

The FastAPI app owns the lifespan: the service's clients (MongoDB, OpenSearch, httpx) open first,
then the Kafka broker starts consuming; on shutdown the broker stops first (in-flight messages
finish and are committed) and the clients close last.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Response
from fastapi.responses import PlainTextResponse
from faststream.kafka import KafkaBroker
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from scicat_schemas.runtime.tracing import UNTRACED_PATHS, tracer_provider

ReadinessCheck = Callable[[], Awaitable[object]]
"""Raises (or returns False) when the dependency is not usable."""

log = structlog.get_logger("scicat.http")


def create_service_app(
    *,
    name: str,
    version: str,
    broker: KafkaBroker,
    registry: CollectorRegistry,
    resources: Callable[[], AbstractAsyncContextManager[Any]],
    checks: dict[str, ReadinessCheck],
    description: str = "",
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A FastAPI app that runs `broker` between opening and closing `resources`."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with resources():
            await broker.start()
            log.info("started", service=name)
            try:
                yield
            finally:
                await broker.stop()
                log.info("stopped", service=name)

    app = FastAPI(
        title=name, version=version, description=description, lifespan=lifespan, **fastapi_kwargs
    )

    async def _kafka() -> bool:
        return bool(await broker.ping(timeout=2.0))

    all_checks: dict[str, ReadinessCheck] = {"kafka": _kafka, **checks}

    @app.get("/healthz", tags=["operations"], summary="Liveness: the process answers.")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": name}

    @app.get("/readyz", tags=["operations"], summary="Readiness: every dependency answers.")
    async def readyz(response: Response) -> dict[str, Any]:
        results: dict[str, str] = {}
        for check_name, check in all_checks.items():
            try:
                ok = await asyncio.wait_for(check(), timeout=3.0)
                results[check_name] = "ok" if ok is not False else "unavailable"
            except Exception as error:
                # The answer may be public (ingress): name the failure, keep hosts and URIs
                # (which can carry credentials) in the log only.
                results[check_name] = f"unavailable: {type(error).__name__}"
                log.warning("readiness check failed", check=check_name, error=repr(error))
        ready = all(v == "ok" for v in results.values())
        response.status_code = 200 if ready else 503
        return {"status": "ready" if ready else "not ready", "checks": results}

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics.",
        response_class=PlainTextResponse,
        responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
    )
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    provider = tracer_provider(name)
    if provider is not None:
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=provider, excluded_urls=UNTRACED_PATHS
        )
    return app
