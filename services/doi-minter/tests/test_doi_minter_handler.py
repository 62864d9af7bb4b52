"""The handler on real MongoDB and the stand-in; Kafka replaced by a list of published events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from scicat_doi_minter import domain
from scicat_doi_minter.registrar import DataCiteUnavailable
from scicat_schemas.documents import DATASET_COLLECTION, PUBLISHED_DATA_COLLECTION, Dataset
from scicat_schemas.events import PublicationRequested
from scicat_schemas.runtime.consumer import Rejected

PID = "desy/p08/11012345/run-7"

MakeRequest = Callable[..., PublicationRequested]
Seed = Callable[..., Awaitable[list[Dataset]]]
Minter = Any  # conftest's `Minter`: the handler on real MongoDB, publishing into a list


async def datasets_published(db: AsyncDatabase[Any]) -> list[tuple[bool, int]]:
    documents = await db[DATASET_COLLECTION].find().sort("pid").to_list(None)
    return [(d["isPublished"], d["pipelineRevision"]) for d in documents]


async def test_request_registers_doi_then_publishes_datasets_and_announces_both(
    minter: Minter, seed_datasets: Seed, make_request: MakeRequest, mongo_db: Any, standin: Any
) -> None:
    await seed_datasets(PID)
    request = make_request("pub-1", PID)

    await minter.deliver(request)

    doi = domain.doi_for("10.5072", "pub-1")
    assert standin.state.dois[doi].state == "findable"
    assert await datasets_published(mongo_db) == [(True, 4)]
    stored = await mongo_db[PUBLISHED_DATA_COLLECTION].find_one({"_id": doi})
    assert stored["status"] == "registered"
    assert stored["registeredTime"] is not None
    assert "lastError" not in stored
    assert minter.events.types() == ["dataset.stored", "publication.registered"]
    topic, key, stored_event = minter.events.sent[0]
    assert (topic, key, stored_event.id) == ("catalogue.datasets", PID, f"{PID}#4")
    topic, key, registered = minter.events.sent[1]
    assert (topic, key) == ("catalogue.publications", "pub-1")
    assert registered.data.record.publication.status == "registered"
    assert registered.data.record.datasets[0].pid == PID


async def test_redelivery_converges_without_moving_revisions_and_reannounces(
    minter: Minter, seed_datasets: Seed, make_request: MakeRequest, mongo_db: Any, standin: Any
) -> None:
    await seed_datasets(PID)
    request = make_request(
        "pub-1",
        PID,
        geo_locations=[{"place": "Hamburg", "box": [9.8, 9.9, 53.5, 53.6]}],
        funding_references=[{"funder_name": "DFG", "award_number": "1"}],
    )

    await minter.deliver(request)
    await minter.deliver(request)

    assert await datasets_published(mongo_db) == [(True, 4)]
    assert await mongo_db[PUBLISHED_DATA_COLLECTION].count_documents({}) == 1
    stored = await mongo_db[PUBLISHED_DATA_COLLECTION].find_one({})
    assert stored["status"] == "registered"  # the same metadata again is no amendment
    assert len(standin.state.dois) == 1
    first, second = minter.events.sent[:2], minter.events.sent[2:]
    assert [e.id for _, _, e in first] == [e.id for _, _, e in second]


async def test_missing_datasets_are_rejected_by_name_before_datacite_is_called(
    minter: Minter, seed_datasets: Seed, make_request: MakeRequest, standin: Any
) -> None:
    await seed_datasets(PID)
    with pytest.raises(Rejected, match="not found in the catalogue: desy/p08/missing"):
        await minter.deliver(make_request("pub-1", PID, "desy/p08/missing"))
    assert await standin.received() == []


async def test_datacite_refusal_is_rejected_recorded_and_leaves_datasets_unpublished(
    minter: Minter, seed_datasets: Seed, make_request: MakeRequest, mongo_db: Any
) -> None:
    await seed_datasets(PID)
    request = make_request("pub-1", PID, language="en_GB")

    with pytest.raises(Rejected, match=r"DataCite refused DOI .*\(HTTP 422\).*en_GB"):
        await minter.deliver(request)

    assert await datasets_published(mongo_db) == [(False, 3)]
    stored = await mongo_db[PUBLISHED_DATA_COLLECTION].find_one({})
    assert stored["status"] == "public"
    assert "en_GB" in stored["lastError"]
    assert minter.events.sent == []


async def test_outage_keeps_the_pending_publication_and_raises_for_a_retry(
    minter: Minter, seed_datasets: Seed, make_request: MakeRequest, mongo_db: Any, standin: Any
) -> None:
    await seed_datasets(PID)
    await standin.add_faults(*[{"status": 503}] * 3)

    with pytest.raises(DataCiteUnavailable):
        await minter.deliver(make_request("pub-1", PID))

    stored = await mongo_db[PUBLISHED_DATA_COLLECTION].find_one({})
    assert (stored["status"], stored["datasetSummaries"][0]["pid"]) == ("public", PID)
    assert "HTTP 503" in stored["lastError"]
    assert await datasets_published(mongo_db) == [(False, 3)]


async def test_failed_update_of_a_registered_publication_keeps_it_registered(
    minter: Minter, seed_datasets: Seed, make_request: MakeRequest, mongo_db: Any
) -> None:
    await seed_datasets(PID)
    await minter.deliver(make_request("pub-1", PID))

    with pytest.raises(Rejected):
        await minter.deliver(make_request("pub-1", PID, title="New", language="en_GB"))

    stored = await mongo_db[PUBLISHED_DATA_COLLECTION].find_one({})
    assert (stored["status"], stored["title"]) == (
        "registered",
        "Strain relaxation in <Ni> & Fe thin films",
    )
    assert "lastError" in stored


async def test_own_registered_and_withdrawn_events_are_ignored(
    minter: Minter, seed_datasets: Seed, make_request: MakeRequest, standin: Any
) -> None:
    await seed_datasets(PID)
    await minter.deliver(make_request("pub-1", PID))
    [(_, _, registered)] = [s for s in minter.events.sent if s[0] == "catalogue.publications"]

    await minter.deliver(registered)

    assert len(await standin.received()) == 1


@pytest.mark.parametrize(
    ("value", "error_type"),
    [
        (b"{not json", "invalid-json"),
        (b'{"type": "publication.requested", "source": "x"}', "invalid-event"),
    ],
)
async def test_malformed_events_are_rejected_with_a_readable_reason(
    minter: Minter, value: bytes, error_type: str
) -> None:
    with pytest.raises(Rejected) as rejected:
        await minter.deliver(value)
    assert rejected.value.error_type == error_type
    assert rejected.value.reason.startswith("publication event is not valid")
