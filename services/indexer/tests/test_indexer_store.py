"""Start-up against real OpenSearch (embedded): the alias and its versioned index."""

from __future__ import annotations

import pytest
from opensearchpy import AsyncOpenSearch
from structlog.testing import capture_logs

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


async def test_index_of_an_older_mapping_revision_is_reported_until_reindexed(
    opensearch_url: str,
) -> None:
    old = index_body("datasets")
    del old["mappings"]["_meta"]  # revision 1 recorded none
    client = AsyncOpenSearch(hosts=[opensearch_url])
    index = OpenSearchDatasetIndex(OpenSearchSettings(url=opensearch_url))
    try:
        await client.indices.create(index="datasets-v1", body=old)
        with capture_logs() as logs:
            async with index.connected():
                assert await index.outdated_indices() == {"datasets-v1": 1}
        [warning] = [e for e in logs if e["event"] == "index.mapping_outdated"]
        assert warning["index"] == "datasets-v1"
        assert "scicat-pipeline reindex" in warning["action"]
        await client.indices.create(index="datasets-v2", body=index_body(None))
        await client.indices.update_aliases(
            body={
                "actions": [
                    {"remove": {"index": "datasets-v1", "alias": "datasets"}},
                    {"add": {"index": "datasets-v2", "alias": "datasets", "is_write_index": True}},
                ]
            }
        )
        with capture_logs() as logs:
            async with index.connected():
                assert await index.outdated_indices() == {}
        assert not [e for e in logs if e["event"] == "index.mapping_outdated"]
    finally:
        await client.close()
