"""Amend, withdraw and proposal DOIs: the handler on real MongoDB and the DataCite stand-in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from scicat_doi_minter import domain
from scicat_doi_minter.registrar import DataCiteUnavailable
from scicat_doi_minter.settings import Settings
from scicat_pipeline.testing import wait_for
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
from scicat_schemas.runtime.consumer import Rejected

PIDS = ("desy/p08/11012345/run-7", "desy/p08/11012345/run-8")
SOURCE = "/desy/scicat/publication-ui"

MakeRequest = Callable[..., PublicationRequested]
Seed = Callable[..., Awaitable[list[Dataset]]]
Minter = Any  # conftest's `Minter`


def doi_of(publication_id: str) -> str:
    return domain.doi_for("10.5072", publication_id)


def amendment(publication_id: str, **changes: Any) -> PublicationAmendmentRequested:
    return PublicationAmendmentRequested(
        source=SOURCE,
        data=PublicationAmendmentRequestedData(
            publication_id=publication_id, changes=PublicationDescription(**changes)
        ),
    )


def withdrawal(publication_id: str, reason: str = "wrong sample") -> PublicationWithdrawalRequested:
    return PublicationWithdrawalRequested(
        source=SOURCE,
        data=PublicationWithdrawalRequestedData(publication_id=publication_id, reason=reason),
    )


async def flags(db: AsyncDatabase[Any]) -> dict[str, tuple[bool, int]]:
    documents = await db[DATASET_COLLECTION].find().to_list(None)
    return {d["pid"]: (d["isPublished"], d["pipelineRevision"]) for d in documents}


async def test_amendment_updates_datacite_and_marks_the_publication_amended(
    minter: Minter, seed_datasets: Seed, make_request: MakeRequest, mongo_db: Any, standin: Any
) -> None:
    await seed_datasets(*PIDS)
    await minter.deliver(make_request("pub-1", *PIDS))
    first = await mongo_db[PUBLISHED_DATA_COLLECTION].find_one({})
    change = amendment("pub-1", title="Strain relaxation, corrected", keywords=["XRR", "strain"])

    await minter.deliver(change)
    await minter.deliver(change)  # redelivered

    doi = doi_of("pub-1")
    stored = await mongo_db[PUBLISHED_DATA_COLLECTION].find_one({})
    assert (stored["status"], stored["title"]) == ("amended", "Strain relaxation, corrected")
    assert stored["registeredTime"] == first["registeredTime"]
    assert stored["abstract"] == first["abstract"]  # unchanged fields are kept
    at_datacite = standin.state.dois[doi]
    assert at_datacite.state.value == "findable"
    assert at_datacite.attributes["titles"][0]["title"] == "Strain relaxation, corrected"
    assert {"subject": "strain"} in at_datacite.attributes["subjects"]
    announced = [e for _, _, e in minter.events.sent if e.type == "publication.registered"]
    assert [e.data.record.publication.status for e in announced] == [
        "registered",
        "amended",
        "amended",
    ]
    assert announced[1].id == announced[2].id != announced[0].id
    assert await flags(mongo_db) == {pid: (True, 4) for pid in PIDS}


async def test_amendment_of_an_unknown_publication_is_rejected_without_calling_datacite(
    minter: Minter, standin: Any
) -> None:
    with pytest.raises(Rejected, match="'nope' is not known"):
        await minter.deliver(amendment("nope", title="x"))
    assert await standin.received() == []


async def test_withdrawal_hides_the_doi_and_unpublishes_only_datasets_nobody_else_publishes(
    minter: Minter, seed_datasets: Seed, make_request: MakeRequest, mongo_db: Any, standin: Any
) -> None:
    await seed_datasets(*PIDS)
    await minter.deliver(make_request("pub-1", *PIDS))
    await minter.deliver(make_request("pub-2", PIDS[1]))
    minter.events.sent.clear()

    await minter.deliver(withdrawal("pub-1"))
    await minter.deliver(withdrawal("pub-1", reason="asked again"))  # idempotent

    doi = doi_of("pub-1")
    assert standin.state.dois[doi].state.value == "registered"  # hidden, still resolvable
    assert standin.state.dois[doi_of("pub-2")].state.value == "findable"
    assert await flags(mongo_db) == {PIDS[0]: (False, 5), PIDS[1]: (True, 4)}
    stored = await mongo_db[PUBLISHED_DATA_COLLECTION].find_one({"_id": doi})
    assert (stored["status"], stored["withdrawalReason"]) == ("withdrawn", "wrong sample")
    once = ["dataset.stored", "publication.withdrawn"]
    assert minter.events.types() == once * 2  # the repeat re-announces the same events
    withdrawn = [e for _, _, e in minter.events.sent if e.type == "publication.withdrawn"]
    assert withdrawn[0].id == withdrawn[1].id == f"{doi}#withdrawn"
    assert withdrawn[0].data.doi == doi and withdrawn[0].data.dataset_pids == [PIDS[0]]
    stored_events = [e for _, _, e in minter.events.sent if e.type == "dataset.stored"]
    assert [e.data.dataset.isPublished for e in stored_events] == [False, False]


async def test_withdrawn_publication_is_neither_amended_nor_registered_again(
    minter: Minter, seed_datasets: Seed, make_request: MakeRequest
) -> None:
    await seed_datasets(*PIDS)
    await minter.deliver(make_request("pub-1", *PIDS))
    await minter.deliver(withdrawal("pub-1"))

    with pytest.raises(Rejected, match="withdrawn"):
        await minter.deliver(amendment("pub-1", title="again"))
    with pytest.raises(Rejected, match="withdrawn"):
        await minter.deliver(make_request("pub-1", *PIDS))


async def test_withdrawing_a_publication_datacite_never_accepted_does_not_create_a_doi(
    minter: Minter, seed_datasets: Seed, make_request: MakeRequest, mongo_db: Any, standin: Any
) -> None:
    await seed_datasets(*PIDS)
    with pytest.raises(Rejected):
        await minter.deliver(make_request("pub-1", *PIDS, language="en_GB"))

    await minter.deliver(withdrawal("pub-1"))

    puts = [r["status"] for r in await standin.received() if r["method"] == "PUT"]
    assert puts == [422]  # nothing but the refused registration was ever written
    assert standin.state.dois == {}
    stored = await mongo_db[PUBLISHED_DATA_COLLECTION].find_one({})
    assert stored["status"] == "withdrawn"
    assert "publication.withdrawn" not in minter.events.types()


@pytest.fixture
async def beamtime(mongo_db: AsyncDatabase[Any]) -> str:
    await mongo_db[PROPOSAL_COLLECTION].insert_one(
        {
            "_id": "11012345",
            "proposalId": "11012345",
            "type": "Beamtime",
            "parentProposalId": "I-20240123",
            "title": "Thin-film strain at P08",
            "startTime": datetime(2025, 3, 3, 8, tzinfo=UTC),
            "endTime": datetime(2025, 3, 6, 8, tzinfo=UTC),
            "instrumentIds": ["p08"],
            "ownerGroup": "11012345-dmgt",
        }
    )
    return "11012345"


async def test_proposal_doi_gets_the_configured_type_and_links_to_dataset_dois(
    minter: Minter,
    seed_datasets: Seed,
    make_request: MakeRequest,
    beamtime: str,
    standin: Any,
) -> None:
    await seed_datasets(*PIDS)  # their proposalIds name the beamtime
    await minter.deliver(make_request("pub-data", *PIDS))

    await minter.deliver(make_request("beamtime-11012345", dataset_pids=[], proposal_id=beamtime))

    proposal_doi = doi_of("beamtime-11012345")
    attributes = standin.state.dois[proposal_doi].attributes
    assert attributes["types"] == {"resourceTypeGeneral": "Other", "resourceType": "Proposal"}
    assert attributes["alternateIdentifiers"] == [
        {"alternateIdentifier": "11012345", "alternateIdentifierType": "Beamtime"}
    ]
    assert {"date": "2025-03-03/2025-03-06", "dateType": "Collected"} in attributes["dates"]
    assert {
        "relatedIdentifier": doi_of("pub-data"),
        "relatedIdentifierType": "DOI",
        "relationType": "HasPart",
        "resourceTypeGeneral": "Dataset",
    } in attributes["relatedIdentifiers"]
    registered = [e for _, _, e in minter.events.sent if e.type == "publication.registered"]
    assert registered[-1].data.record.proposal.proposalId == "11012345"

    # a dataset publication minted after the proposal DOI points back to it
    await minter.deliver(make_request("pub-later", PIDS[0]))
    later = standin.state.dois[doi_of("pub-later")].attributes
    assert {
        "relatedIdentifier": proposal_doi,
        "relatedIdentifierType": "DOI",
        "relationType": "IsPartOf",
        "resourceTypeGeneral": "Other",
    } in later["relatedIdentifiers"]


async def test_proposal_doi_type_can_be_chosen_per_request(
    minter: Minter, make_request: MakeRequest, beamtime: str, standin: Any
) -> None:
    await minter.deliver(
        make_request(
            "beamtime-project",
            dataset_pids=[],
            proposal_id=beamtime,
            resource_type_general="Project",
            resource_type="Beamtime",
        )
    )
    attributes = standin.state.dois[doi_of("beamtime-project")].attributes
    assert attributes["types"] == {"resourceTypeGeneral": "Project", "resourceType": "Beamtime"}


async def test_unknown_proposal_is_rejected_by_name(
    minter: Minter, make_request: MakeRequest, standin: Any
) -> None:
    with pytest.raises(Rejected, match="proposal 'missing' not found"):
        await minter.deliver(make_request("p", dataset_pids=[], proposal_id="missing"))
    assert await standin.received() == []


def test_proposal_type_setting_must_be_in_the_datacite_vocabulary(
    minter_settings: Settings,
) -> None:
    with pytest.raises(ValidationError, match="proposal_resource_type_general"):
        Settings.model_validate(
            {**minter_settings.model_dump(), "proposal_resource_type_general": "Proposal"}
        )


async def test_draft_reserves_the_doi_privately_until_the_request_without_draft_publishes_it(
    minter: Minter, seed_datasets: Seed, make_request: MakeRequest, mongo_db: Any, standin: Any
) -> None:
    await seed_datasets(*PIDS)
    doi = doi_of("pub-1")

    await minter.deliver(make_request("pub-1", *PIDS, draft=True))

    assert standin.state.dois[doi].state.value == "draft"
    assert (await mongo_db[PUBLISHED_DATA_COLLECTION].find_one({}))["status"] == "private"
    assert await flags(mongo_db) == {pid: (False, 3) for pid in PIDS}
    assert minter.events.sent == []

    await minter.deliver(make_request("pub-1", *PIDS))

    assert standin.state.dois[doi].state.value == "findable"
    assert (await mongo_db[PUBLISHED_DATA_COLLECTION].find_one({}))["status"] == "registered"
    assert await flags(mongo_db) == {pid: (True, 4) for pid in PIDS}
    with pytest.raises(Rejected, match="cannot become a draft again"):
        await minter.deliver(make_request("pub-1", *PIDS, draft=True))


async def test_withdrawing_a_draft_releases_the_reserved_doi(
    minter: Minter, seed_datasets: Seed, make_request: MakeRequest, mongo_db: Any, standin: Any
) -> None:
    await seed_datasets(*PIDS)
    await minter.deliver(make_request("pub-1", *PIDS, draft=True))

    await minter.deliver(withdrawal("pub-1"))
    await minter.deliver(withdrawal("pub-1"))  # withdrawn already: nothing more to do

    assert standin.state.dois == {}
    assert [(r["method"], r["status"]) for r in await standin.received()] == [
        ("PUT", 201),
        ("GET", 200),
        ("DELETE", 204),
        ("GET", 404),
    ]
    assert (await mongo_db[PUBLISHED_DATA_COLLECTION].find_one({}))["status"] == "withdrawn"


async def test_withdrawal_hides_a_doi_datacite_accepted_after_our_request_timed_out(
    minter: Minter, seed_datasets: Seed, make_request: MakeRequest, mongo_db: Any, standin: Any
) -> None:
    await seed_datasets(*PIDS)
    slower_than_the_client = minter.handler.settings.datacite.timeout_seconds + 0.2
    await standin.add_faults(*[{"delay_seconds": slower_than_the_client}] * 3)
    with pytest.raises(DataCiteUnavailable):
        await minter.deliver(make_request("pub-1", *PIDS))
    doi = doi_of("pub-1")
    assert (await mongo_db[PUBLISHED_DATA_COLLECTION].find_one({}))["status"] == "public"

    async def findable_anyway() -> bool:
        record = standin.state.dois.get(doi)
        return record is not None and record.state.value == "findable"

    await wait_for(findable_anyway, what="DataCite finishing the timed-out request")
    await minter.deliver(withdrawal("pub-1"))

    assert standin.state.dois[doi].state.value == "registered"  # hidden
    assert (await mongo_db[PUBLISHED_DATA_COLLECTION].find_one({}))["status"] == "withdrawn"
    assert await flags(mongo_db) == {pid: (False, 3) for pid in PIDS}
