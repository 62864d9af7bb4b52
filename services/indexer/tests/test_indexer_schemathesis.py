"""The search API does what its OpenAPI document promises: schemathesis, with and without a token.

The app runs for real (uvicorn on a loopback port, OpenSearch and Kafka of the embedded stack,
tokens from the OIDC stand-in) with a few datasets indexed, so responses carry real items and
facets. Each operation gets a small, derandomized batch of generated requests; every response must
be below 500 and conform to the documented status codes, content types and schemas.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests
import schemathesis
import uvicorn
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from scicat_indexer.app import create_app
from scicat_indexer.settings import OidcSettings, Settings
from scicat_pipeline.commands.token import fetch_token
from scicat_pipeline.embedded import free_port
from scicat_pipeline.standins.oidc import StandinIssuer, served_issuer
from scicat_pipeline.testing import wait_for
from scicat_schemas.documents import Dataset
from scicat_schemas.topics import CATALOGUE_DATASETS

AUDIENCE = "scicat-search"
EXAMPLES_PER_OPERATION = 15
REQUEST_TIMEOUT = 10
MAX_REQUEST_HEAD = 16 * 1024
"""Larger request lines and headers are refused by the HTTP server (h11's limit) before the app
sees them, as a reverse proxy would (414/431); generating them tests uvicorn, not the API."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
KNOWN_DEVIATIONS: dict[str, str] = {}
"""Operations checked only for server errors and status codes, and why."""


@dataclass(frozen=True)
class ServedIndexer:
    url: str
    spec: dict[str, Any]
    token: str


@pytest.fixture
async def served(
    indexer_settings: Settings,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
) -> AsyncIterator[ServedIndexer]:
    async with served_issuer(audience=AUDIENCE) as issuer:
        app = create_app(
            indexer_settings.model_copy(
                update={"oidc": OidcSettings(issuer=issuer.url, audience=AUDIENCE)}
            )
        )
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
        )
        task = asyncio.create_task(server.serve())
        try:
            await wait_for(lambda: _started(server, task), timeout=30, what="the indexer")
            url = f"http://127.0.0.1:{port}"
            token = await _seed(url, issuer, indexer_settings, make_dataset, stored_event)
            yield ServedIndexer(url=url, spec=app.openapi(), token=token)
        finally:
            server.should_exit = True
            await task


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()
        raise AssertionError("the indexer stopped while starting")
    return server.started


async def _seed(
    url: str,
    issuer: StandinIssuer,
    indexer_settings: Settings,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
) -> str:
    """Index a published and two private datasets; the token returned sees one private one."""
    datasets = [
        make_dataset("open_run", beamtime="11000001", isPublished=True, keywords=["film"]),
        make_dataset("mine_run", beamtime="11000002", hours=1, ownerGroup="group-mine"),
        make_dataset("theirs_run", beamtime="11000003", hours=2, ownerGroup="group-theirs"),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=indexer_settings.kafka.bootstrap_servers)
    await producer.start()
    try:
        for dataset in datasets:
            await producer.send_and_wait(
                CATALOGUE_DATASETS, stored_event(dataset), key=dataset.pid.encode()
            )
    finally:
        await producer.stop()
    everything = await fetch_token(issuer.url, groups=["group-mine", "group-theirs"], subject="x")
    async with httpx.AsyncClient(base_url=url) as http:

        async def indexed() -> bool:
            page = await http.get("/datasets", headers={"Authorization": f"Bearer {everything}"})
            return page.status_code == 200 and page.json()["total"] == len(datasets)

        await wait_for(indexed, timeout=30, what="the seed datasets")
    return await fetch_token(issuer.url, groups=["group-mine"], subject="alice")


def _conforms(
    served: ServedIndexer,
    headers: dict[str, str],
    mode: GenerationMode = GenerationMode.POSITIVE,
) -> None:
    """Run the generated requests of every operation (blocking: call it in a thread)."""
    schema = schemathesis.openapi.from_dict(served.spec)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the OpenAPI document lists no operations"
    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            # No shrinking: a failure is reported as found, so a red run stays bounded too.
            phases=[Phase.explicit, Phase.generate],
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: schemathesis.Case) -> None:
            assume(_request_head_size(case, served.url) <= MAX_REQUEST_HEAD)
            checks = CHECKS[:2] if case.operation.label in KNOWN_DEVIATIONS else CHECKS
            case.call_and_validate(
                base_url=served.url, headers=headers, checks=checks, timeout=REQUEST_TIMEOUT
            )

        if mode is GenerationMode.NEGATIVE and not _has_inputs(operation):
            continue
        try:
            check()
        except Unsatisfiable:
            # Negative mode only: when every input is valid (any string is a pid), none is invalid.
            if mode is GenerationMode.POSITIVE:
                raise


def _request_head_size(case: schemathesis.Case, base_url: str) -> int:
    """Bytes of the request line and headers `case` sends."""
    kwargs = case.as_transport_kwargs(base_url=base_url)
    request = requests.Request(
        method=kwargs["method"],
        url=kwargs["url"],
        params=kwargs.get("params"),
        headers=kwargs.get("headers"),
    ).prepare()
    head = f"{request.method} {request.url} HTTP/1.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in request.headers.items()
    )
    return len(head.encode())


def _has_inputs(operation: APIOperation) -> bool:
    """Whether requests to `operation` can be invalid at all (it has parameters or a body)."""
    return bool(operation.definition.raw.get("parameters") or operation.body)


async def test_anonymous_requests_conform_to_the_openapi_document(served: ServedIndexer) -> None:
    await asyncio.to_thread(_conforms, served, {})


async def test_authenticated_requests_conform_to_the_openapi_document(
    served: ServedIndexer,
) -> None:
    await asyncio.to_thread(_conforms, served, {"Authorization": f"Bearer {served.token}"})


async def test_invalid_requests_are_refused_with_documented_client_errors(
    served: ServedIndexer,
) -> None:
    """Schema-violating parameters and bodies: never a 5xx, always a documented 4xx."""
    await asyncio.to_thread(
        _conforms, served, {"Authorization": f"Bearer {served.token}"}, GenerationMode.NEGATIVE
    )
