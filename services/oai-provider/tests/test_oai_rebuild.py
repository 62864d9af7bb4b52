"""`scicat-pipeline oai rebuild`: the read model derived from PublishedData, Dataset, Proposal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from oai_testkit import REPOSITORY_IDENTIFIER, identifier, publication_record, registered_event
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from typer.testing import CliRunner

from scicat_oai_provider.handlers import PublicationHandler
from scicat_oai_provider.rebuild import Catalogue, RebuildOptions, RebuildReport, rebuild
from scicat_oai_provider.store import MongoOaiRecordStore
from scicat_pipeline.cli import app
from scicat_schemas.events import encode
from scicat_schemas.runtime.settings import MongoSettings

OPTIONS = RebuildOptions(
    repository_identifier=REPOSITORY_IDENTIFIER, datacentre_symbol="DESY.SCICAT", facility="DESY"
)
FIRST = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
LATER = FIRST + timedelta(days=1)


@pytest.fixture
def mongo(mongo_uri: str, database_name: str) -> MongoSettings:
    return MongoSettings(uri=mongo_uri, database=database_name)


@pytest.fixture
async def catalogue_db(mongo_uri: str, database_name: str) -> AsyncIterator[AsyncDatabase[Any]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        yield client[database_name]
    finally:
        await client.close()


def published_document(doi: str, status: str, *, summaries: bool = True, **changes: Any) -> Any:
    """A PublishedData as the doi-minter stores it (`_id` = DOI, summaries beside it)."""
    record = publication_record(doi=doi, publication_id=doi.rsplit("/", 1)[-1], beamtime="11019001")
    document = record.publication.model_dump() | {"_id": doi, "status": status} | changes
    if summaries:
        document["datasetSummaries"] = [d.model_dump() for d in record.datasets]
    return document, record


async def seed_catalogue(db: AsyncDatabase[Any]) -> None:
    registered, _ = published_document("10.5072/desy.reg", "registered")
    amended, record = published_document("10.5072/desy.amd", "amended", summaries=False)
    withdrawn, _ = published_document("10.5072/desy.wd", "withdrawn")
    private, _ = published_document("10.5072/desy.private", "private")
    broken, _ = published_document("10.5072/desy.broken", "registered", metadata={})
    await db["PublishedData"].insert_many([registered, amended, withdrawn, private, broken])
    await db["Dataset"].insert_many(
        [d.model_dump() | {"_id": d.pid, "scientificMetadata": {}} for d in record.datasets]
    )
    await db["Proposal"].insert_one(
        {
            "_id": "11019001",
            "proposalId": "11019001",
            "type": "Beamtime",
            "parentProposalId": "11012345",
            "ownerGroup": "11019001-dmgt",
        }
    )


async def run(store: MongoOaiRecordStore, mongo: MongoSettings, now: datetime, **kw: Any) -> Any:
    catalogue = Catalogue(mongo)
    try:
        options = RebuildOptions(**{**OPTIONS.__dict__, **kw})
        return await rebuild(catalogue=catalogue, store=store, options=options, clock=lambda: now)
    finally:
        await catalogue.close()


async def test_rebuild_renders_registered_amended_and_withdrawn_publications(
    store: MongoOaiRecordStore, catalogue_db: AsyncDatabase[Any], mongo: MongoSettings
) -> None:
    await seed_catalogue(catalogue_db)
    report: RebuildReport = await run(store, mongo, FIRST)
    assert (report.examined, report.created, report.changed, report.unchanged) == (4, 3, 0, 0)
    assert [doi for doi, _ in report.refused] == ["10.5072/desy.broken"]
    assert "creators" in report.refused[0][1]
    registered = await store.get(identifier("10.5072/desy.reg"))
    amended = await store.get(identifier("10.5072/desy.amd"))
    withdrawn = await store.get(identifier("10.5072/desy.wd"))
    assert registered is not None and amended is not None and withdrawn is not None
    assert not registered.deleted and registered.datestamp == FIRST
    assert "proposal:11012345:11019001" in registered.set_specs
    assert "10.5072/desy.amd" in amended.metadata["oai_dc"], "summaries from Dataset documents"
    assert "facility:desy:p08" in amended.set_specs
    assert withdrawn.deleted and not withdrawn.metadata
    assert withdrawn.formats == ("oai_dc", "oai_datacite", "datacite")
    assert await store.get(identifier("10.5072/desy.private")) is None


async def test_rerunning_the_rebuild_keeps_every_unchanged_datestamp(
    store: MongoOaiRecordStore, catalogue_db: AsyncDatabase[Any], mongo: MongoSettings
) -> None:
    await seed_catalogue(catalogue_db)
    await run(store, mongo, FIRST)
    await catalogue_db["PublishedData"].update_one(
        {"_id": "10.5072/desy.reg"}, {"$set": {"title": "A corrected title"}}
    )
    preview = await run(store, mongo, LATER, dry_run=True)
    assert (preview.changed, preview.unchanged) == (1, 2)
    unchanged_by_dry_run = await store.get(identifier("10.5072/desy.reg"))
    assert unchanged_by_dry_run is not None and unchanged_by_dry_run.datestamp == FIRST
    report = await run(store, mongo, LATER)
    assert (report.created, report.changed, report.unchanged) == (0, 1, 2)
    stamps = {
        doi: record.datestamp
        for doi in ("10.5072/desy.reg", "10.5072/desy.amd", "10.5072/desy.wd")
        if (record := await store.get(identifier(doi)))
    }
    assert stamps == {
        "10.5072/desy.reg": LATER,
        "10.5072/desy.amd": FIRST,
        "10.5072/desy.wd": FIRST,
    }


async def test_records_the_service_stored_are_unchanged_by_a_rebuild(
    store: MongoOaiRecordStore, catalogue_db: AsyncDatabase[Any], mongo: MongoSettings
) -> None:
    """The event path and the rebuild path render the same bytes, so a rebuild re-dates nothing."""
    document, record = published_document("10.5072/desy.same", "registered")
    await catalogue_db["PublishedData"].insert_one(document)
    handler = PublicationHandler(
        store=store,
        repository_identifier=REPOSITORY_IDENTIFIER,
        datacentre_symbol="DESY.SCICAT",
        facility="DESY",
        proposals=store,
        clock=lambda: FIRST,
    )
    message = SimpleNamespace(
        value=encode(registered_event(record)), offset=0, topic="catalogue.publications"
    )
    await handler.handle(message)  # type: ignore[arg-type]
    report = await run(store, mongo, LATER)
    assert (report.created, report.changed, report.unchanged) == (0, 0, 1)


def test_the_cli_rebuilds_with_a_summary_and_fails_on_refused_publications(
    mongo_uri: str, database_name: str
) -> None:
    async def seed() -> None:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
        try:
            await seed_catalogue(client[database_name])
        finally:
            await client.close()

    asyncio.run(seed())
    arguments = ["oai", "rebuild", "--mongodb", mongo_uri, "--database", database_name]
    env = {"OAI_PROVIDER_REPOSITORY_IDENTIFIER": REPOSITORY_IDENTIFIER}
    dry = CliRunner().invoke(app, [*arguments, "--dry-run"], env=env)
    assert "would be created" in dry.output and "dry run" in dry.output
    result = CliRunner().invoke(app, arguments, env=env)
    assert result.exit_code == 1, result.output
    assert "refused 10.5072/desy.broken" in result.output
    again = CliRunner().invoke(app, arguments, env=env)
    assert again.exit_code == 1
    unchanged_row = again.output.split("unchanged (datestamp kept)")[1].splitlines()[0]
    assert unchanged_row.split()[-2:] == ["3", "│"]
