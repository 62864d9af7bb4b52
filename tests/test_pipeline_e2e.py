"""End to end on the embedded stack: a file-close event becomes a dataset in MongoDB, is found in
OpenSearch, gets a DOI from the DataCite stand-in and is harvested over OAI-PMH."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from lxml import etree
from pipeline_support import RunningStack, cloud_event
from pymongo import AsyncMongoClient

from scicat_pipeline.commands.token import fetch_token
from scicat_pipeline.polling import wait_for
from scicat_pipeline.stack import DATACITE_PASSWORD, DATACITE_USER, OIDC_AUDIENCE
from scicat_pipeline.testing.topics import read_topic
from scicat_pipeline.testing.xsd import assert_valid

pytestmark = pytest.mark.e2e

OAI = "{http://www.openarchives.org/OAI/2.0/}"


def _file_closed(run_id: str, beamtime_id: str, name: str, size: int = 2048) -> dict[str, Any]:
    return {
        "path": f"/asap3/petra3/gpfs/p08/2026/data/{beamtime_id}/raw/{run_id}/{name}",
        "size": size,
        "closed_at": "2026-03-01T10:00:00Z",
        "instrument": "P08",
        "beamtime_id": beamtime_id,
        "run_id": run_id,
        "checksum": {"algorithm": "sha256", "value": "ab" * 32},
        "metadata": {"energy": {"value": 18.0, "unit": "keV"}, "sample": {"name": "LaB6"}},
    }


async def _dataset(stack: RunningStack, pid: str) -> dict[str, Any] | None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.endpoints["mongodb"])
    try:
        return await client["scicat"]["Dataset"].find_one({"pid": pid})
    finally:
        await client.close()


async def _mongo_find(stack: RunningStack, collection: str, query: dict[str, Any]) -> list[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.endpoints["mongodb"])
    try:
        return await client["scicat"][collection].find(query).to_list(None)
    finally:
        await client.close()


async def test_a_file_close_event_flows_to_a_doi_harvested_over_oai_pmh(
    stack: RunningStack, producer: AIOKafkaProducer
) -> None:
    beamtime = f"1101{uuid.uuid4().int % 10_000:04d}"
    run_id = f"zincblende_strain_{uuid.uuid4().hex[:6]}"
    pid = f"local/{beamtime}/{run_id}"
    for number in (1, 2):
        await producer.send_and_wait(
            "acquisition.events",
            cloud_event(
                "file.closed",
                f"{run_id}-{number}",
                _file_closed(run_id, beamtime, f"img_{number:05d}.cbf"),
            ),
            key=run_id.encode(),
        )

    # MongoDB: the dataset and its file list, SciCat field names.
    dataset = await wait_for(
        lambda: _dataset_with_files(stack, pid, 2), timeout=30, what="the dataset with two files"
    )
    assert dataset["datasetName"] == run_id
    assert dataset["size"] == 4096
    assert dataset["sourceFolder"].endswith(f"/raw/{run_id}")
    assert dataset["isPublished"] is False
    [datablock] = await _mongo_find(stack, "OrigDatablock", {"datasetId": pid})
    assert sorted(f["path"] for f in datablock["dataFileList"]) == [
        "img_00001.cbf",
        "img_00002.cbf",
    ]

    # OpenSearch: found by a fragment from the middle of its name — by the beamtime's data
    # managers (a token from the OIDC stand-in); anonymous users see only published datasets.
    token = await fetch_token(
        stack.endpoints["oidc"], groups=[f"{beamtime}-dmgt"], subject="e2e", audience=OIDC_AUDIENCE
    )
    async with httpx.AsyncClient(timeout=10) as http:

        async def search_hit(bearer: str | None) -> dict[str, Any] | None:
            answer = await http.get(
                stack.endpoints["search_api"],
                params={"text": run_id[5:14]},
                headers={"Authorization": f"Bearer {bearer}"} if bearer else {},
            )
            items = answer.json()["items"] if answer.status_code == 200 else []
            return next((i for i in items if i["pid"] == pid), None)

        await wait_for(lambda: search_hit(token), timeout=30, what="the search hit")
        assert await search_hit(None) is None, "an unpublished dataset is visible anonymously"

        # DataCite: a publication request registers a findable DOI with kernel-4 valid XML.
        publication_id = f"e2e-{uuid.uuid4().hex[:8]}"
        await producer.send_and_wait(
            "catalogue.publications",
            cloud_event(
                "publication.requested",
                publication_id,
                {
                    "publication_id": publication_id,
                    "dataset_pids": [pid],
                    "title": "Strain in zincblende <films> & more",
                    "abstract": "Two detector images from P08.",
                    "creators": [{"name": "Doe, Jane", "orcid": "0000-0002-1825-0097"}],
                    "publication_year": 2026,
                },
            ),
            key=publication_id.encode(),
        )
        [published] = await wait_for(
            lambda: _published(stack, publication_id), timeout=45, what="PublishedData registered"
        )
        doi = published["doi"]
        registration = await http.get(
            f"{stack.endpoints['datacite']}/dois/{doi}", auth=(DATACITE_USER, DATACITE_PASSWORD)
        )
        assert registration.status_code == 200
        attributes = registration.json()["data"]["attributes"]
        assert attributes["state"] == "findable"
        assert attributes["url"].endswith(doi)
        assert_valid(base64.b64decode(attributes["xml"]))
        dataset = await _dataset(stack, pid)
        assert dataset is not None
        assert dataset["isPublished"] is True
        await wait_for(
            lambda: search_hit(None), timeout=30, what="the published dataset, anonymously"
        )

        # The landing page the DOI resolves to.
        landing = await http.get(attributes["url"])
        assert landing.status_code == 200
        assert "Strain in zincblende &lt;films&gt; &amp; more" in landing.text

        # OAI-PMH: GetRecord and ListRecords, XSD-valid, carrying the DOI, in both formats.
        identifier = await wait_for(
            lambda: _oai_identifier(http, stack, doi), timeout=30, what="the OAI record"
        )
        for prefix in ("oai_dc", "oai_datacite"):
            record = await http.get(
                stack.endpoints["oai_pmh"],
                params={"verb": "GetRecord", "identifier": identifier, "metadataPrefix": prefix},
            )
            assert_valid(record.content)
            assert doi in record.text
            listing = await http.get(
                stack.endpoints["oai_pmh"], params={"verb": "ListRecords", "metadataPrefix": prefix}
            )
            assert_valid(listing.content)
            assert doi in listing.text


async def test_a_malformed_event_is_dead_lettered_and_the_next_one_is_processed(
    stack: RunningStack, producer: AIOKafkaProducer
) -> None:
    run_id = f"poison_{uuid.uuid4().hex[:6]}"
    bad = cloud_event("file.closed", f"{run_id}-bad", {"run_id": run_id, "path": "/x"})
    await producer.send_and_wait("acquisition.events", bad, key=run_id.encode())
    await producer.send_and_wait(
        "acquisition.events",
        cloud_event("file.closed", f"{run_id}-good", _file_closed(run_id, "11010000", "a.h5")),
        key=run_id.encode(),
    )
    await wait_for(
        lambda: _dataset_with_files(stack, f"local/11010000/{run_id}", 1),
        timeout=30,
        what="the good event after the bad one",
    )
    letters = await read_topic(
        stack.endpoints["kafka"], "ingestor.dlq", where=lambda r: r.value == bad, timeout=30
    )
    headers = dict(letters[0].headers)
    assert headers["dlq-original-topic"] == b"acquisition.events"
    assert b"size" in headers["dlq-reason"]


async def test_the_same_event_delivered_twice_gives_one_dataset(
    stack: RunningStack, producer: AIOKafkaProducer
) -> None:
    run_id = f"twice_{uuid.uuid4().hex[:6]}"
    event = cloud_event("file.closed", f"{run_id}-1", _file_closed(run_id, "11010001", "a.h5"))
    marker = cloud_event("file.closed", f"{run_id}-2", _file_closed(run_id, "11010001", "b.h5"))
    for value in (event, event, marker):
        await producer.send_and_wait("acquisition.events", value, key=run_id.encode())
    pid = f"local/11010001/{run_id}"
    dataset = await wait_for(
        lambda: _dataset_with_files(stack, pid, 2), timeout=30, what="both distinct files"
    )
    assert dataset["numberOfFiles"] == 2
    assert len(await _mongo_find(stack, "Dataset", {"pid": pid})) == 1
    [datablock] = await _mongo_find(stack, "OrigDatablock", {"datasetId": pid})
    assert sorted(f["path"] for f in datablock["dataFileList"]) == ["a.h5", "b.h5"]


async def test_every_service_reports_health_readiness_and_metrics(stack: RunningStack) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        for service in ("ingestor", "indexer", "doi_minter", "oai_provider"):
            base = stack.endpoints[service]
            assert (await http.get(f"{base}/healthz")).status_code == 200
            ready = await http.get(f"{base}/readyz")
            assert ready.status_code == 200, ready.text
            metrics = await http.get(f"{base}/metrics")
            assert "scicat_messages_processed_total" in metrics.text


async def _dataset_with_files(stack: RunningStack, pid: str, files: int) -> dict[str, Any] | None:
    dataset = await _dataset(stack, pid)
    return dataset if dataset and dataset["numberOfFiles"] == files else None


async def _published(stack: RunningStack, publication_id: str) -> list[Any]:
    return await _mongo_find(
        stack, "PublishedData", {"publicationId": publication_id, "status": "registered"}
    )


async def _oai_identifier(http: httpx.AsyncClient, stack: RunningStack, doi: str) -> str | None:
    answer = await http.get(
        stack.endpoints["oai_pmh"], params={"verb": "ListIdentifiers", "metadataPrefix": "oai_dc"}
    )
    root = etree.fromstring(answer.content)
    for header in root.iter(f"{OAI}header"):
        identifier = header.findtext(f"{OAI}identifier") or ""
        if identifier.endswith(doi):
            return identifier
    return None
