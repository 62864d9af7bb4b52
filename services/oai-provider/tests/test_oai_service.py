"""The service on the embedded stack: events on Kafka in, OAI-PMH over HTTP out."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer
from oai_testkit import (
    NS,
    error_codes,
    header_ids,
    identifier,
    oai_get,
    oai_xml,
    produce,
    publication_record,
    registered_event,
    requested_event,
    service_settings,
    withdrawn_event,
)
from pymongo import AsyncMongoClient
from pymongo.errors import ServerSelectionTimeoutError
from sickle import Sickle

from scicat_oai_provider.app import create_app
from scicat_oai_provider.store import MongoOaiRecordStore
from scicat_pipeline.embedded import free_port
from scicat_pipeline.testing import wait_for
from scicat_schemas.events import encode
from scicat_schemas.runtime import dead_letter
from scicat_schemas.runtime.settings import KafkaSettings

DOIS = ["10.5072/desy.pub-1", "10.5072/desy.pub-2", "10.5072/desy.pub-3"]


async def register(kafka: str, *dois: str) -> None:
    for n, doi in enumerate(dois):
        record = publication_record(doi=doi, publication_id=f"pub-{n}", title=f"Dataset {doi}")
        await produce(kafka, registered_event(record), key=f"pub-{n}".encode())


async def harvest(client: httpx.AsyncClient, **arguments: str) -> list[Any]:
    """Every header of a list, following resumption tokens; [] for noRecordsMatch."""
    verb = arguments.get("verb", "ListIdentifiers")
    page = await oai_get(client, **arguments)
    if error_codes(page) == ["noRecordsMatch"]:
        return []
    headers = list(page.iterfind(".//oai:header", NS))
    while token := page.findtext(f"oai:{verb}/oai:resumptionToken", namespaces=NS):
        page = await oai_get(client, verb=verb, resumptionToken=token)
        headers += page.iterfind(".//oai:header", NS)
    return headers


async def wait_until_listed(client: httpx.AsyncClient, count: int, **arguments: str) -> list[Any]:
    async def listed() -> list[Any]:
        headers = await harvest(client, **arguments)
        return headers if len(headers) >= count else []

    return await wait_for(listed, what=f"{count} records listed")


async def test_registered_publications_are_harvestable_in_every_format(
    service: httpx.AsyncClient, kafka: str
) -> None:
    await register(kafka, *DOIS)
    for prefix in ("oai_dc", "oai_datacite", "datacite"):
        headers = await wait_until_listed(service, 3, verb="ListRecords", metadataPrefix=prefix)
        assert sorted(header_ids(headers)) == sorted(identifier(d) for d in DOIS)
    for prefix in ("oai_dc", "oai_datacite", "datacite"):
        page = await oai_get(service, verb="ListRecords", metadataPrefix=prefix)
        first_page = page.findall(".//oai:record", NS)
        assert len(first_page) == 2
        assert page.find(".//oai:resumptionToken", NS).get("completeListSize") == "3"
        for record in first_page:
            doi = record.findtext("oai:header/oai:identifier", namespaces=NS).split(":", 2)[2]
            assert doi in "".join(record.find("oai:metadata", NS).itertext())
        got = await oai_get(
            service, verb="GetRecord", identifier=identifier(DOIS[1]), metadataPrefix=prefix
        )
        metadata = got.find("oai:GetRecord/oai:record/oai:metadata", NS)
        assert DOIS[1] in "".join(metadata.itertext())
    sets = await oai_get(service, verb="ListSets")
    assert "facility:desy:p08" in [e.text for e in sets.iterfind(".//oai:setSpec", NS)]
    selected = await harvest(
        service, verb="ListIdentifiers", metadataPrefix="oai_dc", set="facility"
    )
    assert len(selected) == 3


async def test_beamtimes_are_placed_under_the_proposal_the_proposal_collection_names(
    service: httpx.AsyncClient, kafka: str, mongo_uri: str, database_name: str
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    try:
        await client[database_name]["Proposal"].insert_one(
            {
                "_id": "11019001",
                "proposalId": "11019001",
                "type": "Beamtime",
                "parentProposalId": "11012345",
                "ownerGroup": "11019001-dmgt",
            }
        )
    finally:
        await client.close()
    record = publication_record(
        doi=DOIS[0], publication_id="pub-0", proposal="11012345", beamtime="11019001"
    )
    await produce(kafka, registered_event(record), key=b"pub-0")
    [header] = await wait_until_listed(
        service, 1, verb="ListIdentifiers", metadataPrefix="oai_dc", set="proposal:11012345"
    )
    assert [e.text for e in header.iterfind("oai:setSpec", NS)] == [
        "facility:desy:p08",
        "proposal:11012345:11019001",
        "openaire_data",
    ]


async def test_withdrawn_publication_appears_as_a_deleted_header(
    service: httpx.AsyncClient, kafka: str
) -> None:
    record = publication_record(doi="10.5072/desy.gone", publication_id="gone")
    await produce(
        kafka,
        registered_event(record),
        withdrawn_event("10.5072/desy.gone", "gone"),
        key=b"gone",
    )

    async def deleted() -> list[Any]:
        page = await oai_get(
            service,
            verb="GetRecord",
            identifier=identifier("10.5072/desy.gone"),
            metadataPrefix="oai_datacite",
        )
        header = page.find("oai:GetRecord/oai:record/oai:header", NS)
        return [page] if header is not None and header.get("status") == "deleted" else []

    [page] = await wait_for(deleted, what="the tombstone")
    assert page.find("oai:GetRecord/oai:record/oai:metadata", NS) is None
    [header] = await wait_until_listed(service, 1, verb="ListIdentifiers", metadataPrefix="oai_dc")
    assert header.get("status") == "deleted"
    assert "openaire_data" in [e.text for e in header.iterfind("oai:setSpec", NS)]


async def test_redelivered_event_changes_nothing(
    service: httpx.AsyncClient, kafka: str, mongo_uri: str, database_name: str
) -> None:
    event = registered_event(publication_record(doi=DOIS[0], publication_id="pub-0"))
    await produce(kafka, event, key=b"pub-0")
    await wait_for(lambda: _has_record(service, DOIS[0]), what="the first delivery")
    before = await _stored(mongo_uri, database_name, DOIS[0])
    # The same bytes again, then another publication on the same partition: once that one is
    # visible, the redelivery before it has been handled.
    marker = registered_event(publication_record(doi=DOIS[1], publication_id="pub-1"))
    await produce(kafka, encode(event), marker, key=b"pub-0")
    await wait_for(lambda: _has_record(service, DOIS[1]), what="the event after the redelivery")
    assert await _stored(mongo_uri, database_name, DOIS[0]) == before
    headers = await wait_until_listed(service, 2, verb="ListIdentifiers", metadataPrefix="oai_dc")
    assert sorted(header_ids(headers)) == sorted(identifier(d) for d in DOIS[:2])


async def test_bad_events_are_dead_lettered_requests_ignored_and_the_next_processed(
    service: httpx.AsyncClient, kafka: str
) -> None:
    broken = publication_record(doi="not-a-doi", publication_id="broken")
    valid = publication_record(doi=DOIS[2], publication_id="pub-2")
    await produce(
        kafka,
        b'{"type": "publication.registered"',
        registered_event(broken),
        requested_event("pub-2"),
        registered_event(valid),
        key=b"pub-2",
    )
    await wait_for(lambda: _has_record(service, DOIS[2]), what="the valid event after the others")
    letters = await _dead_letters(kafka, 2)
    assert len(letters) == 2
    reasons = {
        dict(letter.headers)[dead_letter.ERROR_TYPE].decode(): dict(letter.headers)[
            dead_letter.REASON
        ].decode()
        for letter in letters
    }
    assert reasons.keys() == {"invalid-json", "invalid-publication"}
    assert "is not a DOI" in reasons["invalid-publication"]
    assert "is not valid" in reasons["invalid-json"]


async def test_post_form_encoded_answers_like_get(service: httpx.AsyncClient) -> None:
    response = await service.post(
        "/oai",
        data={"verb": "ListMetadataFormats"},
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    root = oai_xml(response.content)
    assert len(root.findall(".//oai:metadataFormat", NS)) == 3
    repeated = await service.post(
        "/oai",
        content=b"verb=GetRecord&metadataPrefix=oai_dc&metadataPrefix=oai_dc&identifier=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert error_codes(oai_xml(repeated.content)) == ["badArgument"]


async def test_errors_are_sent_with_http_200(service: httpx.AsyncClient) -> None:
    response = await service.get("/oai", params=[("verb", "Identify"), ("verb", "Identify")])
    assert response.status_code == 200
    assert error_codes(oai_xml(response.content)) == ["badVerb"]


async def test_responses_are_gzipped_when_the_harvester_accepts_it(
    service: httpx.AsyncClient,
) -> None:
    response = await service.get(
        "/oai", params={"verb": "Identify"}, headers={"Accept-Encoding": "gzip"}
    )
    assert response.headers["content-encoding"] == "gzip"
    identify = oai_xml(response.content)
    assert identify.findtext(".//oai:compression", namespaces=NS) == "gzip"
    raw = await service.get(
        "/oai", params={"verb": "Identify"}, headers={"Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in raw.headers
    assert raw.content.startswith(b"<?xml")


async def test_an_unavailable_store_answers_503_with_retry_after(
    service: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unavailable(self: MongoOaiRecordStore) -> None:
        raise ServerSelectionTimeoutError("no MongoDB server answers")

    monkeypatch.setattr(MongoOaiRecordStore, "earliest_datestamp", unavailable)
    response = await service.get("/oai", params={"verb": "Identify"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"


async def test_ready_when_mongodb_and_kafka_answer(service: httpx.AsyncClient) -> None:
    response = await service.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"kafka": "ok", "mongodb": "ok"}


async def test_sickle_harvests_every_record_through_resumption_tokens(
    kafka: str, kafka_settings: KafkaSettings, mongo_uri: str, database_name: str
) -> None:
    port = free_port()
    settings = service_settings(
        kafka_settings, mongo_uri, database_name, page_size=2, public_url=f"http://127.0.0.1:{port}"
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None)
    )
    serving = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: _started(server), what="uvicorn")
        dois = [f"10.5072/desy.sickle-{n}" for n in range(5)]
        await register(kafka, *dois)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await wait_until_listed(client, 5, verb="ListIdentifiers", metadataPrefix="oai_dc")

        def harvest_with_sickle() -> list[tuple[str, list[str]]]:
            sickle = Sickle(settings.base_url, max_retries=0, timeout=10)
            return [
                (record.header.identifier, record.metadata["identifier"])
                for record in sickle.ListRecords(metadataPrefix="oai_dc")
            ]

        harvested = await asyncio.to_thread(harvest_with_sickle)
    finally:
        server.should_exit = True
        await serving
    assert sorted(i for i, _ in harvested) == sorted(identifier(d) for d in dois)
    for oai_id, dc_identifiers in harvested:
        assert f"https://doi.org/{oai_id.split(':', 2)[2]}" in dc_identifiers


async def _started(server: uvicorn.Server) -> bool:
    return server.started


async def _has_record(client: httpx.AsyncClient, doi: str) -> bool:
    page = await oai_get(
        client, verb="GetRecord", identifier=identifier(doi), metadataPrefix="oai_dc"
    )
    return not error_codes(page)


async def _stored(mongo_uri: str, database_name: str, doi: str) -> dict[str, Any] | None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    try:
        return await client[database_name]["OaiRecord"].find_one({"_id": identifier(doi)})
    finally:
        await client.close()


async def _dead_letters(kafka: str, expected: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        "oai-provider.dlq", bootstrap_servers=kafka, auto_offset_reset="earliest"
    )
    await consumer.start()
    letters: list[Any] = []
    try:

        async def enough() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                letters.extend(records)
            return len(letters) >= expected

        await wait_for(enough, what=f"{expected} dead letters")
    finally:
        await consumer.stop()
    return letters
