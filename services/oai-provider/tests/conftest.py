"""Factories and helpers shared by the oai-provider tests.

Test modules import them as `oai_testkit`: the bare name `conftest` resolves to the root `tests/`
directory (it is on `pythonpath`), so this module registers itself under its own name.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from lxml import etree

from scicat_oai_provider.app import create_app
from scicat_oai_provider.domain import (
    OaiRecord,
    apply_content,
    oai_identifier,
    registered_content,
    withdrawn_content,
)
from scicat_oai_provider.settings import Settings
from scicat_oai_provider.store import MongoOaiRecordStore
from scicat_oai_provider.tokens import TokenCodec
from scicat_oai_provider.verbs import Repository, respond
from scicat_pipeline.embedded import free_port
from scicat_pipeline.testing import wait_for
from scicat_pipeline.testing.xsd import assert_valid
from scicat_schemas.documents import DatasetSummary, PublicationRecord, PublishedData
from scicat_schemas.events import (
    CloudEvent,
    Creator,
    PublicationRegistered,
    PublicationRegisteredData,
    PublicationRequested,
    PublicationRequestedData,
    PublicationWithdrawn,
    PublicationWithdrawnData,
    encode,
)
from scicat_schemas.runtime.settings import KafkaSettings, MongoSettings
from scicat_schemas.topics import CATALOGUE_PUBLICATIONS

sys.modules.setdefault("oai_testkit", sys.modules[__name__])

NS = {
    "oai": "http://www.openarchives.org/OAI/2.0/",
    "oai_dc": "http://www.openarchives.org/OAI/2.0/oai_dc/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "datacite": "http://datacite.org/schema/kernel-4",
    "oai_datacite": "http://schema.datacite.org/oai/oai-1.1/",
    "oai-identifier": "http://www.openarchives.org/OAI/2.0/oai-identifier",
}
REPOSITORY_IDENTIFIER = "scicat.example.org"
BASE_URL = "http://oai.test/oai"
SECRET = "test-token-secret"
NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
DAY = datetime(2024, 3, 10, tzinfo=UTC)


def publication_record(
    *,
    doi: str = "10.5072/desy.pub-1",
    publication_id: str = "pub-1",
    title: str = "Operando XRD of Li-ion cathodes",
    instrument: str = "P08",
    proposal: str = "11012345",
    beamtime: str = "bt-11012345",
    registered: datetime | None = None,
) -> PublicationRecord:
    """A realistic DESY publication of two datasets from one beamtime."""
    registered = registered or datetime(2024, 3, 14, 9, 30, tzinfo=UTC)
    datasets = [
        DatasetSummary(
            pid=f"20.500.12269/{beamtime}/scan-{n}",
            datasetName=f"scan-{n}",
            size=1_234_567 * n,
            numberOfFiles=3 * n,
            creationTime=datetime(2024, 2, 1 + n, 14, 0, tzinfo=UTC),
            instrumentIds=[instrument],
            proposalIds=[proposal, beamtime],
            creationLocation=f"/DESY/{instrument}",
            keywords=["XRD", "battery"],
        )
        for n in (1, 2)
    ]
    publication = PublishedData(
        doi=doi,
        publicationId=publication_id,
        title=title,
        abstract="Diffraction during cycling of NMC811 cathodes at 25 keV.",
        datasetPids=[d.pid for d in datasets],
        status="registered",
        numberOfFiles=9,
        sizeOfArchive=3_703_701,
        registeredTime=registered,
        landingPage=f"https://data.example.org/publications/{publication_id}",
        metadata={
            "creators": [
                {
                    "name": "Müller, Anna",
                    "nameType": "Personal",
                    "givenName": "Anna",
                    "familyName": "Müller",
                    "nameIdentifiers": [
                        {
                            "nameIdentifier": "https://orcid.org/0000-0002-1825-0097",
                            "nameIdentifierScheme": "ORCID",
                            "schemeUri": "https://orcid.org",
                        }
                    ],
                    "affiliation": [{"name": "DESY"}],
                }
            ],
            "publisher": "DESY",
            "publicationYear": registered.year,
            "resourceType": {"resourceTypeGeneral": "Dataset"},
            "keywords": ["operando"],
            "license": "https://creativecommons.org/licenses/by/4.0/",
            "licenseName": "CC BY 4.0",
        },
    )
    return PublicationRecord(publication=publication, datasets=datasets)


def registered_event(record: PublicationRecord, *, event_id: str | None = None) -> CloudEvent:
    return PublicationRegistered(
        id=event_id or str(uuid.uuid4()),
        source="/scicat/doi-minter",
        subject=record.publication.doi,
        data=PublicationRegisteredData(record=record),
    )


def requested_event(publication_id: str) -> CloudEvent:
    return PublicationRequested(
        source="/scicat/publications",
        data=PublicationRequestedData(
            publication_id=publication_id,
            dataset_pids=["20.500.12269/bt-1/scan-1"],
            title="Requested, not yet registered",
            abstract="Waiting for a DOI.",
            creators=[Creator(name="Müller, Anna")],
            publication_year=2024,
        ),
    )


def withdrawn_event(doi: str, publication_id: str) -> CloudEvent:
    return PublicationWithdrawn(
        source="/scicat/doi-minter",
        subject=doi,
        data=PublicationWithdrawnData(
            publication_id=publication_id,
            doi=doi,
            withdrawn_at=datetime.now(UTC),
            reason="duplicate of another publication",
        ),
    )


def identifier(doi: str) -> str:
    return oai_identifier(REPOSITORY_IDENTIFIER, doi)


def stored_record(
    doi: str,
    datestamp: datetime,
    *,
    instrument: str = "P08",
    proposal: str = "11012345",
    beamtime: str = "bt-11012345",
    deleted: bool = False,
) -> OaiRecord:
    """A record rendered as the handler would render it, but stamped at a chosen time.

    The beamtime is known as a child of the proposal, as the `Proposal` collection would say.
    """
    publication_id = doi.rsplit("/", 1)[-1]
    content = registered_content(
        publication_record(
            doi=doi,
            publication_id=publication_id,
            instrument=instrument,
            proposal=proposal,
            beamtime=beamtime,
        ),
        repository_identifier=REPOSITORY_IDENTIFIER,
        datacentre_symbol="DESY.SCICAT",
        facility="DESY",
        proposal_parents={beamtime: proposal},
    )
    record = apply_content(None, content, event=f"test\x1f{doi}", now=datestamp)
    assert record is not None
    if deleted:
        tombstone = withdrawn_content(
            record,
            repository_identifier=REPOSITORY_IDENTIFIER,
            doi=doi,
            publication_id=publication_id,
        )
        record = apply_content(record, tombstone, event=f"withdrawn\x1f{doi}", now=datestamp)
        assert record is not None
    return record


async def produce(bootstrap: str, *events: CloudEvent | bytes, key: bytes = b"pub") -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for event in events:
            value = event if isinstance(event, bytes) else encode(event)
            await producer.send_and_wait(CATALOGUE_PUBLICATIONS, value, key=key)
    finally:
        await producer.stop()


def oai_xml(body: bytes) -> etree._Element:
    """Parse a response and validate envelope and metadata against the shared XSDs."""
    return assert_valid(body)


def error_codes(root: etree._Element) -> list[str]:
    return [e.get("code") for e in root.findall("oai:error", NS)]


@pytest.fixture
async def store(mongo_uri: str, database_name: str) -> AsyncIterator[MongoOaiRecordStore]:
    records = MongoOaiRecordStore(MongoSettings(uri=mongo_uri, database=database_name))
    await records.open()
    try:
        yield records
    finally:
        await records.close()


def repository(page_size: int = 100, ttl: timedelta = timedelta(hours=24)) -> Repository:
    return Repository.build(
        name="Test repository",
        base_url=BASE_URL,
        admin_email="oai@example.org",
        repository_identifier=REPOSITORY_IDENTIFIER,
        page_size=page_size,
        tokens=TokenCodec(SECRET, ttl=ttl),
    )


class Harvester:
    """Calls the verbs directly against a store, validating every response."""

    def __init__(self, store: MongoOaiRecordStore, *, page_size: int = 100) -> None:
        self.store = store
        self.repository = repository(page_size)

    async def __call__(self, now: datetime, **arguments: str) -> etree._Element:
        answer = await respond(
            list(arguments.items()), repository=self.repository, store=self.store, now=now
        )
        return oai_xml(answer.document)

    async def harvest(
        self, now: datetime, verb: str = "ListIdentifiers", **arguments: str
    ) -> tuple[list[etree._Element], list[etree._Element]]:
        """Follow resumption tokens to the end; returns the headers and each page's token."""
        headers: list[etree._Element] = []
        tokens: list[etree._Element] = []
        page = await self(now, verb=verb, **arguments)
        while True:
            headers.extend(page.iterfind(".//oai:header", NS))
            token = page.find(f"oai:{verb}/oai:resumptionToken", NS)
            if token is None or not token.text:
                if token is not None:
                    tokens.append(token)
                return headers, tokens
            tokens.append(token)
            page = await self(now, verb=verb, resumptionToken=token.text)


def header_ids(headers: Iterable[etree._Element]) -> list[str]:
    return [h.findtext("oai:identifier", namespaces=NS) or "" for h in headers]


def service_settings(
    kafka_settings: KafkaSettings, mongo_uri: str, database_name: str, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "kafka": kafka_settings,
        "mongo": MongoSettings(uri=mongo_uri, database=database_name),
        "public_url": "http://oai.test",
        "repository_identifier": REPOSITORY_IDENTIFIER,
        "token_secret": SECRET,
    }
    return Settings(**(values | overrides))


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield client


@pytest.fixture
async def service(
    kafka_settings: KafkaSettings, mongo_uri: str, database_name: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The whole service on the embedded stack, with page size 2 to exercise paging."""
    app = create_app(service_settings(kafka_settings, mongo_uri, database_name, page_size=2))
    async with running(app) as client:
        yield client


async def oai_get(client: httpx.AsyncClient, **params: str) -> etree._Element:
    response = await client.get("/oai", params=params)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    return oai_xml(response.content)


def clone_record(template: OaiRecord, doi: str, datestamp: datetime) -> OaiRecord:
    """`template` re-addressed to `doi`: volume for harvest tests without rendering each one."""
    return replace(
        template,
        identifier=identifier(doi),
        doi=doi,
        publication_id=doi.rsplit("/", 1)[-1],
        datestamp=datestamp,
        metadata={k: v.replace(template.doi, doi) for k, v in template.metadata.items()},
        applied=(),
    )


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    """The whole service on uvicorn on a free loopback port; yields its OAI-PMH base URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=int(settings.public_url.rsplit(":", 1)[1]),
            log_config=None,
        )
    )
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():
            task.result()
        return server.started

    try:
        await wait_for(started, what="uvicorn")
        yield settings.base_url
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def oai_base_url(
    kafka_settings: KafkaSettings, mongo_uri: str, database_name: str
) -> AsyncIterator[str]:
    """The service over real HTTP, 100 records per page, on the test's database."""
    settings = service_settings(
        kafka_settings,
        mongo_uri,
        database_name,
        page_size=100,
        public_url=f"http://127.0.0.1:{free_port()}",
    )
    async with serving(settings) as base_url:
        yield base_url


async def put(store: MongoOaiRecordStore, *records: OaiRecord) -> None:
    """Store records as the event path does: a new one, or the next version of a stored one."""
    for record in records:
        current = await store.get(record.identifier)
        version = None if current is None else current.version
        ready = record if version is None else replace(record, version=version + 1)
        await store.save(ready, expected_version=version)


def request_attributes(root) -> dict[str, str]:  # type: ignore[no-untyped-def]
    request = root.find("oai:request", NS)
    assert request.text == BASE_URL
    return dict(request.attrib)
