"""The whole service on the embedded stack: Kafka (tansu), MongoDB (SecantusDB), DataCite stand-in.

Requests are produced with aiokafka before the app starts (the consumer reads from the earliest
offset), so each test waits on outcomes, never on the group join.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
from pymongo.asynchronous.database import AsyncDatabase

from scicat_doi_minter import domain
from scicat_doi_minter.app import create_app
from scicat_doi_minter.settings import Settings
from scicat_pipeline.testing import wait_for
from scicat_pipeline.testing.xsd import assert_valid
from scicat_schemas.documents import DATASET_COLLECTION, PUBLISHED_DATA_COLLECTION, Dataset
from scicat_schemas.events import PublicationRequested
from scicat_schemas.runtime import dead_letter

PIDS = ("desy/p08/11012345/run-7", "desy/p08/11012345/run-8")
LANDING = "https://doi.example.org/doi/"

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


def events_of(records: list[Any], event_type: str) -> list[dict[str, Any]]:
    events = [json.loads(r.value) for r in records]
    return [e for e in events if e["type"] == event_type]


async def test_requested_publication_becomes_a_findable_doi_with_landing_page_and_events(
    app_settings: Settings,
    standin: Any,
    seed_datasets: Seed,
    make_request: MakeRequest,
    produce_request: Produce,
    topic_reader: Reader,
    mongo_db: AsyncDatabase[Any],
) -> None:
    await seed_datasets(*PIDS)
    request = make_request("P08-11012345-thin-films", *PIDS)
    doi = domain.doi_for("10.5072", "P08-11012345-thin-films")
    await produce_request(request)

    async with (
        running(app_settings) as client,
        topic_reader("catalogue.publications") as publications,
        topic_reader("catalogue.datasets") as datasets,
    ):

        async def registered() -> list[dict[str, Any]]:
            return events_of(await publications.poll(), "publication.registered")

        [announcement] = await wait_for(registered, what="publication.registered")
        stored = await wait_for(
            lambda: _at_least(datasets.poll(), 2), what="two dataset.stored events"
        )
        page = await client.get(f"/doi/{doi}")
        ready = await client.get("/readyz")

    doi_at_datacite = (await standin.get_doi(doi)).json()["data"]["attributes"]
    assert doi_at_datacite["state"] == "findable"
    assert doi_at_datacite["url"] == f"{LANDING}{doi}"
    resource = assert_valid(base64.b64decode(doi_at_datacite["xml"]))
    assert resource.findtext("{http://datacite.org/schema/kernel-4}identifier") == doi

    assert await published_flags(mongo_db) == [True, True]
    assert sorted(json.loads(r.value)["id"] for r in stored) == [f"{p}#4" for p in PIDS]
    assert {json.loads(r.value)["data"]["dataset"]["isPublished"] for r in stored} == {True}
    record = announcement["data"]["record"]
    assert (record["publication"]["doi"], record["publication"]["status"]) == (doi, "registered")
    assert announcement["source"] == "/scicat-pipeline/doi-minter"

    assert page.status_code == 200
    assert "Strain relaxation in &lt;Ni&gt; &amp; Fe thin films" in page.text
    assert 'href="https://orcid.org/0000-0002-1825-0097"' in page.text
    script = re.search(r'<script type="application/ld\+json">(.*?)</script>', page.text, re.S)
    assert script and json.loads(script.group(1))["@type"] == "Dataset"
    assert ready.status_code == 200, ready.text


async def test_datasets_are_published_only_after_datacite_recovers_from_server_errors(
    app_settings: Settings,
    standin: Any,
    seed_datasets: Seed,
    make_request: MakeRequest,
    produce_request: Produce,
    mongo_db: AsyncDatabase[Any],
) -> None:
    await seed_datasets(*PIDS)
    await standin.add_faults(*[{"status": 500}] * 6)  # two whole handler attempts fail
    await produce_request(make_request("pub-500", *PIDS))

    async with running(app_settings):

        async def failed_attempt() -> dict[str, Any] | None:
            document = await mongo_db[PUBLISHED_DATA_COLLECTION].find_one({})
            return document if document and "lastError" in document else None

        pending = await wait_for(failed_attempt, what="a failed attempt recorded")
        assert await published_flags(mongo_db) == [False, False]
        assert pending["status"] == "public"
        assert "HTTP 500" in pending["lastError"]

        async def all_published() -> bool:
            return await published_flags(mongo_db) == [True, True]

        await wait_for(all_published, what="datasets published after recovery")

    statuses = [r["status"] for r in await standin.received()]
    assert statuses == [500] * 6 + [201]
    final = await mongo_db[PUBLISHED_DATA_COLLECTION].find_one({})
    assert final is not None and final["status"] == "registered" and "lastError" not in final


async def test_throttling_and_server_errors_are_retried_and_credentials_stay_out_of_logs(
    app_settings: Settings,
    standin: Any,
    seed_datasets: Seed,
    make_request: MakeRequest,
    produce_request: Produce,
    mongo_db: AsyncDatabase[Any],
    json_logs: Any,
) -> None:
    await seed_datasets(*PIDS)
    await standin.add_faults({"status": 429}, {"status": 500})
    await produce_request(make_request("pub-429", *PIDS))

    async with running(app_settings):

        async def registered() -> bool:
            document = await mongo_db[PUBLISHED_DATA_COLLECTION].find_one({})
            return bool(document and document["status"] == "registered")

        await wait_for(registered, what="registration after retries")

    assert [r["status"] for r in await standin.received()] == [429, 500, 201]
    logs = json_logs.getvalue()
    assert "DataCite not available, retrying" in logs
    password = app_settings.datacite.password.get_secret_value()
    basic = base64.b64encode(f"{app_settings.datacite.username}:{password}".encode()).decode()
    assert password not in logs
    assert basic not in logs


async def test_datacite_validation_error_dead_letters_the_request_and_datasets_stay_unpublished(
    app_settings: Settings,
    standin: Any,
    seed_datasets: Seed,
    make_request: MakeRequest,
    produce_request: Produce,
    topic_reader: Reader,
    mongo_db: AsyncDatabase[Any],
) -> None:
    await seed_datasets(*PIDS)
    # a language tag with `_`: the event schema accepts any string, DataCite's XSD does not
    request = make_request("pub-typo", *PIDS, language="en_GB")
    await produce_request(request)

    async with running(app_settings), topic_reader("doi-minter.dlq") as dlq:
        [letter] = await wait_for(lambda: _at_least(dlq.poll(), 1), what="a dead letter")

    headers = {k: v.decode() for k, v in letter.headers}
    assert json.loads(letter.value)["id"] == request.id
    assert headers[dead_letter.ERROR_TYPE] == "datacite-refused"
    reason = headers[dead_letter.REASON]
    assert "HTTP 422" in reason
    assert "'en_GB' is not a valid value of the atomic type 'xs:language'" in reason
    assert await published_flags(mongo_db) == [False, False]
    stored = await mongo_db[PUBLISHED_DATA_COLLECTION].find_one({})
    assert stored is not None and stored["status"] == "public" and "en_GB" in stored["lastError"]
    assert [r["status"] for r in await standin.received()] == [422]


async def test_same_request_delivered_twice_yields_one_doi_and_one_published_data(
    app_settings: Settings,
    standin: Any,
    seed_datasets: Seed,
    make_request: MakeRequest,
    produce_request: Produce,
    topic_reader: Reader,
    mongo_db: AsyncDatabase[Any],
) -> None:
    await seed_datasets(*PIDS)
    await produce_request(make_request("pub-twice", *PIDS), times=2)

    async with running(app_settings), topic_reader("catalogue.publications") as publications:

        async def two_registered() -> list[dict[str, Any]]:
            found = events_of(await publications.poll(), "publication.registered")
            return found if len(found) == 2 else []

        first, second = await wait_for(two_registered, what="both deliveries answered")

    assert first["id"] == second["id"]
    assert list(standin.state.dois) == [domain.doi_for("10.5072", "pub-twice")]
    assert await mongo_db[PUBLISHED_DATA_COLLECTION].count_documents({}) == 1
    revisions = [d["pipelineRevision"] async for d in mongo_db[DATASET_COLLECTION].find()]
    assert revisions == [4, 4]


async def _at_least(items: Awaitable[list[Any]], count: int) -> list[Any]:
    found = await items
    return found if len(found) >= count else []
