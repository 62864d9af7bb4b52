"""Paging over the read model's adaptive query windows: empty years, crowded seconds."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from oai_testkit import (
    REPOSITORY_IDENTIFIER,
    Harvester,
    clone_record,
    header_ids,
    identifier,
    stored_record,
)
from pymongo import AsyncMongoClient

from scicat_oai_provider.domain import apply_content, withdrawn_content
from scicat_oai_provider.store import MongoOaiRecordStore
from scicat_schemas.runtime.settings import MongoSettings

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
DAY = datetime(2024, 3, 10, tzinfo=UTC)


async def test_paging_crosses_sparse_years_and_crowded_seconds_exactly_once(
    store: MongoOaiRecordStore,
) -> None:
    """The adaptive query windows: years without records, then 250 records in one second."""
    crowded = DAY + timedelta(days=30)
    template = stored_record("10.5072/template", crowded)
    records = [
        stored_record("10.5072/y2019", datetime(2019, 1, 1, tzinfo=UTC)),
        stored_record("10.5072/y2023", datetime(2023, 7, 1, tzinfo=UTC)),
        *(clone_record(template, f"10.5072/c{n:03d}", crowded) for n in range(250)),
        stored_record("10.5072/last", crowded + timedelta(seconds=1)),
    ]
    await store.insert_many(records)
    headers, tokens = await Harvester(store, page_size=40).harvest(
        NOW, "ListIdentifiers", metadataPrefix="oai_dc"
    )
    assert header_ids(headers) == [r.identifier for r in records]
    assert [t.get("cursor") for t in tokens] == [str(40 * n) for n in range(len(tokens))]
    in_2023, _ = await Harvester(store, page_size=40).harvest(
        NOW,
        "ListIdentifiers",
        metadataPrefix="oai_dc",
        **{"from": "2020-01-01", "until": "2024-01-01"},
    )
    assert header_ids(in_2023) == [identifier("10.5072/y2023")]


async def test_records_without_the_format_are_skipped_without_ending_the_list(
    store: MongoOaiRecordStore,
) -> None:
    """A DOI withdrawn before it was disseminated has no formats; the list pages past it."""
    never_shown = withdrawn_content(
        None,
        repository_identifier=REPOSITORY_IDENTIFIER,
        doi="10.5072/b-never-shown",
        publication_id="never-shown",
    )
    tombstone = apply_content(None, never_shown, event="withdrawn", now=DAY)
    assert tombstone is not None and tombstone.formats == ()
    await store.insert_many(
        [
            stored_record("10.5072/a", DAY),
            *(replace(tombstone, identifier=identifier(f"10.5072/b{n}")) for n in range(5)),
            stored_record("10.5072/c", DAY),
        ]
    )
    headers, tokens = await Harvester(store, page_size=1).harvest(
        NOW, "ListIdentifiers", metadataPrefix="datacite"
    )
    assert header_ids(headers) == [identifier("10.5072/a"), identifier("10.5072/c")]
    # A whole-repository list estimates its size by the collection's (§3.5 allows estimates);
    # the last page knows the exact figure.
    assert [(t.get("cursor"), t.get("completeListSize")) for t in tokens] == [
        ("0", "7"),
        ("1", "2"),
    ]


async def test_a_read_model_of_the_previous_layout_is_upgraded_at_start_up(
    mongo_uri: str, database_name: str
) -> None:
    """Documents without `harvestKey` get one, and the old `(datestamp, _id)` indexes go."""
    record = stored_record("10.5072/old", DAY)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        collection = client[database_name]["OaiRecord"]
        await collection.create_index([("datestamp", 1), ("_id", 1)], name="harvest_order")
        document = {
            "_id": record.identifier,
            "doi": record.doi,
            "datestamp": record.datestamp,
            "deleted": False,
            "sets": [{"spec": s.spec, "name": s.name} for s in record.sets],
            "setPaths": ["openaire_data"],
            "formats": list(record.formats),
            "metadata": dict(record.metadata),
            "contentHash": record.content_hash,
            "version": 1,
        }
        await collection.insert_one(document)
        store = MongoOaiRecordStore(MongoSettings(uri=mongo_uri, database=database_name))
        await store.open()
        try:
            headers, _ = await Harvester(store).harvest(NOW, metadataPrefix="oai_dc")
            assert header_ids(headers) == [record.identifier]
            assert "harvest_order" not in await collection.index_information()
        finally:
            await store.close()
    finally:
        await client.close()
