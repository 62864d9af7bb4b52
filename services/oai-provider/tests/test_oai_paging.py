"""Lists over the read model's entries: adaptive query windows, consistency with the records,
the upgrade from the previous layout."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from oai_testkit import (
    NS,
    REPOSITORY_IDENTIFIER,
    Harvester,
    clone_record,
    header_ids,
    identifier,
    stored_record,
)
from pymongo import AsyncMongoClient

from scicat_oai_provider.domain import (
    ListQuery,
    OaiRecord,
    RecordKey,
    apply_content,
    withdrawn_content,
)
from scicat_oai_provider.listing import entry_documents, read_page
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
    # So does `openaire_data`, the set of every record; any other set is counted exactly.
    for set_spec, first_size in (("openaire_data", "7"), ("facility", "2")):
        headers, tokens = await Harvester(store, page_size=1).harvest(
            NOW, "ListIdentifiers", metadataPrefix="datacite", set=set_spec
        )
        assert header_ids(headers) == [identifier("10.5072/a"), identifier("10.5072/c")]
        assert tokens[0].get("completeListSize") == first_size


def previous_layout_document(record: OaiRecord) -> dict[str, Any]:
    """An `OaiRecord` document as the previous layout stored it: lists read it directly."""
    return {
        "_id": record.identifier,
        "harvestKey": f"{record.datestamp:%Y-%m-%dT%H:%M:%SZ} {record.identifier}",
        "doi": record.doi,
        "datestamp": record.datestamp,
        "deleted": record.deleted,
        "sets": [{"spec": s.spec, "name": s.name} for s in record.sets],
        "setPaths": ["openaire_data"],
        "formats": list(record.formats),
        "metadata": dict(record.metadata),
        "contentHash": record.content_hash,
        "version": 1,
    }


async def test_a_read_model_of_a_previous_layout_is_upgraded_at_start_up(
    mongo_uri: str, database_name: str
) -> None:
    """List entries are built from `OaiRecord` at start-up, and the old list indexes go."""
    records = [
        stored_record("10.5072/old", DAY),
        stored_record("10.5072/old-withdrawn", DAY + timedelta(seconds=1), deleted=True),
    ]
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        collection = client[database_name]["OaiRecord"]
        await collection.create_index([("datestamp", 1), ("_id", 1)], name="harvest_order")
        await collection.create_index([("harvestKey", 1)], name="harvest_key")
        await collection.insert_many([previous_layout_document(r) for r in records])
        store = MongoOaiRecordStore(MongoSettings(uri=mongo_uri, database=database_name))
        await store.open()
        try:
            page = await Harvester(store)(NOW, verb="ListRecords", metadataPrefix="oai_dc")
            assert header_ids(page.iterfind(".//oai:header", NS)) == [r.identifier for r in records]
            deleted = page.find(".//oai:header[@status='deleted']", NS)
            assert deleted is not None and deleted.findtext("oai:identifier", namespaces=NS) == (
                records[1].identifier
            )
            assert len(page.findall(".//oai:metadata", NS)) == 1
            assert {"harvest_order", "harvest_key"}.isdisjoint(await collection.index_information())
            # Facts an earlier layout did not keep are found in the records.
            assert await store.earliest_datestamp() == DAY
            assert await store.has_sets()
            assert sorted(e.spec for e in await store.set_entries()) == sorted(
                {entry.spec for record in records for entry in record.sets}
            )
        finally:
            await store.close()
    finally:
        await client.close()


async def test_the_upgrade_keeps_list_entries_written_for_newer_versions(
    mongo_uri: str, database_name: str
) -> None:
    """An entry the event path wrote meanwhile for a newer version is not overwritten."""
    old = stored_record("10.5072/raced", DAY)
    newer = stored_record("10.5072/raced", DAY + timedelta(seconds=5))
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        database = client[database_name]
        await database["OaiRecord"].insert_one(previous_layout_document(old))
        await database["OaiListEntry"].insert_many(entry_documents(replace(newer, version=2)))
        store = MongoOaiRecordStore(MongoSettings(uri=mongo_uri, database=database_name))
        await store.open()
        try:
            headers, _ = await Harvester(store).harvest(NOW, metadataPrefix="datacite")
            assert [h.findtext("oai:datestamp", namespaces=NS) for h in headers] == [
                "2024-03-10T00:00:05Z"
            ]
        finally:
            await store.close()
    finally:
        await client.close()


class CountingEntries:
    """The list entries collection, remembering the filter of every query a page runs."""

    def __init__(self, entries: Any) -> None:
        self.entries = entries
        self.filters: list[Any] = []

    def find(self, selector: Any, **options: Any) -> Any:
        self.filters.append(selector)
        return self.entries.find(selector, **options)


async def test_a_harvest_reads_few_documents_beyond_those_it_returns(
    store: MongoOaiRecordStore,
) -> None:
    """The embedded MongoDB reads every document of a query's range, so windows must fit."""
    template = stored_record("10.5072/template", DAY)
    records = [
        clone_record(template, f"10.5072/d{n:04d}", DAY + timedelta(seconds=n // 3))
        for n in range(600)
    ]
    await store.insert_many(records)
    query = ListQuery("oai_dc", None, None, NOW)
    counting = CountingEntries(store.entries)
    delivered: list[str] = []
    after: RecordKey | None = None
    span = 0
    while True:
        page = await read_page(
            counting,  # type: ignore[arg-type]
            query,
            start=after.datestamp if after else DAY,
            after=after,
            limit=51,
            with_metadata=True,
            span_seconds=span,
        )
        delivered += [entry.key.identifier for entry in page.entries[:50]]
        if len(page.entries) <= 50:
            break
        after, span = page.entries[49].key, page.span_seconds
    assert delivered == [r.identifier for r in records]
    read = [await store.entries.count_documents(selector) for selector in counting.filters]
    assert sum(read) <= 1.4 * len(records), read


async def test_a_record_and_its_list_entries_are_written_together_or_not_at_all(
    store: MongoOaiRecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails after the record was replaced leaves the record and lists as they were."""
    first = stored_record("10.5072/atomic", DAY)
    await store.save(first, expected_version=None)
    changed = replace(
        stored_record("10.5072/atomic", DAY + timedelta(hours=1), deleted=True), version=2
    )

    def entries_fail(record: OaiRecord) -> list[dict[str, Any]]:
        raise RuntimeError("the list entries could not be written")

    monkeypatch.setattr("scicat_oai_provider.store.entry_documents", entries_fail)
    with pytest.raises(RuntimeError):
        await store.save(changed, expected_version=first.version)
    monkeypatch.undo()
    stored = await store.get(first.identifier)
    assert stored is not None and (stored.version, stored.deleted) == (first.version, False)
    headers, _ = await Harvester(store).harvest(NOW, metadataPrefix="oai_dc")
    assert [(h.get("status"), h.findtext("oai:datestamp", namespaces=NS)) for h in headers] == [
        (None, "2024-03-10T00:00:00Z")
    ]
