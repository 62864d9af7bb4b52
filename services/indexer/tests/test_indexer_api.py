"""HTTP behaviour that needs no running consumer: errors from the index, odd paths."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError

from scicat_indexer.app import create_app
from scicat_indexer.store import SearchPage


class UnreachableIndex:
    async def search(self, body: dict[str, Any]) -> SearchPage:
        raise OpenSearchConnectionError("N/A", "connection refused", OSError("refused"))

    async def get(self, pid: str) -> dict[str, Any] | None:
        raise AssertionError("an empty pid must not reach the index")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app()
    app.state.dataset_index = UnreachableIndex()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


async def test_search_answers_503_while_opensearch_is_unreachable(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/datasets", params={"text": "scan"})
    assert response.status_code == 503
    assert "unavailable" in response.json()["detail"]


async def test_empty_pid_is_not_found(http: httpx.AsyncClient) -> None:
    response = await http.get("/datasets/")
    assert response.status_code == 404


async def test_openapi_documents_the_search_parameters(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    parameters = {p["name"]: p for p in spec["paths"]["/datasets"]["get"]["parameters"]}
    assert parameters["limit"]["schema"]["maximum"] == 1000
    assert parameters["skip"]["schema"]["minimum"] == 0
    assert "/datasets/{pid}" in spec["paths"]
