"""The service on the embedded stack through DataCite outages, withdrawals and proposal DOIs."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from pymongo.asynchronous.database import AsyncDatabase

from scicat_doi_minter import domain
from scicat_doi_minter.app import create_app
from scicat_doi_minter.settings import Settings
from scicat_pipeline.testing import wait_for
from scicat_pipeline.testing.xsd import assert_valid
from scicat_schemas.documents import (
    DATASET_COLLECTION,
    PROPOSAL_COLLECTION,
    PUBLISHED_DATA_COLLECTION,
    Dataset,
)
from scicat_schemas.events import (
    PublicationAmendmentRequested,
    PublicationAmendmentRequestedData,
    PublicationDescription,
    PublicationRequested,
    PublicationWithdrawalRequested,
    PublicationWithdrawalRequestedData,
)

PIDS = ("desy/p08/11012345/run-7", "desy/p08/11012345/run-8")
KERNEL = "{http://datacite.org/schema/kernel-4}"

Seed = Callable[..., Awaitable[list[Dataset]]]
MakeRequest = Callable[..., PublicationRequested]
Produce = Callable[..., Awaitable[None]]
Reader = Callable[[str], AbstractAsyncContextManager[Any]]


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def published_flags(db: AsyncDatabase[Any]) -> list[bool]:
    documents = await db[DATASET_COLLECTION].find().sort("pid").to_list(None)
    return [d["isPublished"] for d in documents]


async def publication(db: AsyncDatabase[Any]) -> dict[str, Any]:
    return await db[PUBLISHED_DATA_COLLECTION].find_one({}) or {}


async def test_nothing_is_lost_while_datacite_is_down(
    app_settings: Settings,
    start_standin: Callable[[], AbstractAsyncContextManager[Any]],
    seed_datasets: Seed,
    make_request: MakeRequest,
    produce_request: Produce,
    mongo_db: AsyncDatabase[Any],
) -> None:
    await seed_datasets(*PIDS)
    await produce_request(make_request("pub-down", *PIDS))

    async with running(app_settings):

        async def refused() -> bool:
            return "connection failed" in (await publication(mongo_db)).get("lastError", "")

        await wait_for(refused, what="a registration attempt against DataCite that is down")
        assert await published_flags(mongo_db) == [False, False]
        assert (await publication(mongo_db))["status"] == "public"

        async with start_standin() as standin:

            async def registered() -> bool:
                return (await publication(mongo_db)).get("status") == "registered"

            await wait_for(registered, timeout=30, what="registration once DataCite is back")
            doi = domain.doi_for("10.5072", "pub-down")
            at_datacite = (await standin.get_doi(doi)).json()["data"]["attributes"]

    assert at_datacite["state"] == "findable"
    assert await published_flags(mongo_db) == [True, True]
    assert "lastError" not in await publication(mongo_db)


async def test_withdrawal_hides_the_doi_unpublishes_datasets_and_leaves_a_tombstone(
    app_settings: Settings,
    standin: Any,
    seed_datasets: Seed,
    make_request: MakeRequest,
    produce_request: Produce,
    topic_reader: Reader,
    mongo_db: AsyncDatabase[Any],
) -> None:
    await seed_datasets(*PIDS)
    await produce_request(make_request("pub-gone", *PIDS))
    await produce_request(
        PublicationWithdrawalRequested(
            source="/desy/scicat/publication-ui",
            data=PublicationWithdrawalRequestedData(
                publication_id="pub-gone", reason="sample mislabelled"
            ),
        )
    )
    doi = domain.doi_for("10.5072", "pub-gone")

    async with (
        running(app_settings) as client,
        topic_reader("catalogue.publications") as publications,
    ):

        async def withdrawn() -> list[dict[str, Any]]:
            events = [json.loads(r.value) for r in await publications.poll()]
            return [e for e in events if e["type"] == "publication.withdrawn"]

        [announcement] = await wait_for(withdrawn, what="publication.withdrawn")
        page = await client.get(f"/doi/{doi}")

    assert announcement["data"]["doi"] == doi
    assert announcement["data"]["reason"] == "sample mislabelled"
    at_datacite = (await standin.get_doi(doi)).json()["data"]["attributes"]
    assert at_datacite["state"] == "registered"  # hidden from DataCite search, still resolvable
    puts = [r for r in await standin.received() if r["method"] == "PUT"]
    assert [(r["event"], r["status"]) for r in puts] == [
        ("publish", 201),
        ("hide", 200),
    ]
    assert await published_flags(mongo_db) == [False, False]
    assert page.status_code == 410
    assert "sample mislabelled" in page.text


async def test_proposal_doi_is_registered_with_xsd_valid_metadata(
    app_settings: Settings,
    standin: Any,
    make_request: MakeRequest,
    produce_request: Produce,
    mongo_db: AsyncDatabase[Any],
) -> None:
    await mongo_db[PROPOSAL_COLLECTION].insert_one(
        {
            "_id": "I-20240123",
            "proposalId": "I-20240123",
            "type": "DOOR Proposal",
            "title": "Strain in epitaxial films",
            "startTime": datetime(2025, 3, 1, tzinfo=UTC),
            "endTime": datetime(2025, 3, 9, tzinfo=UTC),
            "ownerGroup": "I-20240123-dmgt",
        }
    )
    await produce_request(
        make_request("proposal-I-20240123", dataset_pids=[], proposal_id="I-20240123")
    )
    doi = domain.doi_for("10.5072", "proposal-I-20240123")

    async with running(app_settings) as client:

        async def registered() -> bool:
            return (await publication(mongo_db)).get("status") == "registered"

        await wait_for(registered, what="the proposal DOI registered")
        page = await client.get(f"/doi/{doi}")

    at_datacite = (await standin.get_doi(doi)).json()["data"]["attributes"]
    assert at_datacite["state"] == "findable"
    resource = assert_valid(base64.b64decode(at_datacite["xml"]))
    resource_type = resource.find(f"{KERNEL}resourceType")
    assert resource_type is not None
    assert (resource_type.get("resourceTypeGeneral"), resource_type.text) == ("Other", "Proposal")
    assert resource.findtext(f"{KERNEL}alternateIdentifiers/{KERNEL}alternateIdentifier") == (
        "I-20240123"
    )
    assert page.status_code == 200
    assert "DOOR Proposal I-20240123: Strain in epitaxial films" in page.text


async def test_amendment_reaches_datacite_and_is_announced_as_amended(
    app_settings: Settings,
    standin: Any,
    seed_datasets: Seed,
    make_request: MakeRequest,
    produce_request: Produce,
    topic_reader: Reader,
) -> None:
    await seed_datasets(*PIDS)
    await produce_request(make_request("pub-amend", *PIDS))
    await produce_request(
        PublicationAmendmentRequested(
            source="/desy/scicat/publication-ui",
            data=PublicationAmendmentRequestedData(
                publication_id="pub-amend",
                changes=PublicationDescription(abstract="Corrected: grown at 320 K."),
            ),
        )
    )
    doi = domain.doi_for("10.5072", "pub-amend")

    async with running(app_settings), topic_reader("catalogue.publications") as publications:

        async def amended() -> list[dict[str, Any]]:
            events = [json.loads(r.value) for r in await publications.poll()]
            return [
                e
                for e in events
                if e["type"] == "publication.registered"
                and e["data"]["record"]["publication"]["status"] == "amended"
            ]

        [announcement] = await wait_for(amended, what="the amended publication.registered")

    assert announcement["data"]["record"]["publication"]["abstract"] == "Corrected: grown at 320 K."
    at_datacite = (await standin.get_doi(doi)).json()["data"]["attributes"]
    resource = assert_valid(base64.b64decode(at_datacite["xml"]))
    assert resource.findtext(f"{KERNEL}descriptions/{KERNEL}description") == (
        "Corrected: grown at 320 K."
    )
    assert at_datacite["state"] == "findable"
