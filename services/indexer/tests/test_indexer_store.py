"""Start-up against real OpenSearch (embedded): the alias and its versioned index."""

from __future__ import annotations

import pytest
from opensearchpy import AsyncOpenSearch

from scicat_indexer.mapping import index_body
from scicat_indexer.settings import OpenSearchSettings
from scicat_indexer.store import OpenSearchDatasetIndex


async def test_missing_alias_is_restored_on_an_existing_versioned_index(
    opensearch_url: str,
) -> None:
    body = index_body("datasets")
    del body["aliases"]
    client = AsyncOpenSearch(hosts=[opensearch_url])
    try:
        await client.indices.create(index="datasets-v1", body=body)
        async with OpenSearchDatasetIndex(OpenSearchSettings(url=opensearch_url)).connected():
            pass
        aliases = await client.indices.get_alias(name="datasets")
    finally:
        await client.close()
    assert list(aliases) == ["datasets-v1"]


async def test_concrete_index_named_like_the_alias_stops_start_up(opensearch_url: str) -> None:
    client = AsyncOpenSearch(hosts=[opensearch_url])
    try:
        await client.indices.create(index="legacy", body={})
    finally:
        await client.close()
    index = OpenSearchDatasetIndex(OpenSearchSettings(url=opensearch_url, alias="legacy"))
    with pytest.raises(RuntimeError, match="concrete index named 'legacy'"):
        async with index.connected():
            pass
