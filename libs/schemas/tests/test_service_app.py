"""The operations face every service shares: readiness says what is down, never where or how."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from scicat_schemas.runtime.broker import create_broker
from scicat_schemas.runtime.http import create_service_app
from scicat_schemas.runtime.settings import KafkaSettings

SECRET_URI = "mongodb://admin:s3cret@mongo-0.internal.example:27017"


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


async def test_readiness_names_the_failed_check_without_its_hosts_or_credentials() -> None:
    async def mongodb() -> bool:
        raise ConnectionError(f"{SECRET_URI}: connection refused")

    async def opensearch() -> bool:
        return True

    broker = create_broker(service="svc", kafka=KafkaSettings(), registry=CollectorRegistry())
    app = create_service_app(
        name="svc",
        version="0",
        broker=broker,
        registry=CollectorRegistry(),
        resources=_nothing,
        checks={"mongodb": mongodb, "opensearch": opensearch},
    )
    with capture_logs() as logs:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://svc"
        ) as http:
            response = await http.get("/readyz")

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["mongodb"] == "unavailable: ConnectionError"
    assert checks["opensearch"] == "ok"
    assert "s3cret" not in response.text and "internal.example" not in response.text
    [logged] = [entry for entry in logs if entry.get("check") == "mongodb"]
    assert SECRET_URI in logged["error"], "operators still find the detail in the log"
