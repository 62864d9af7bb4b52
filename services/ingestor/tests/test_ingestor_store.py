"""The MongoDB store on SecantusDB: one transaction per event, markers, revision guard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from scicat_ingestor.beamtime_announcements import ANNOUNCEMENT_COLLECTION
from scicat_ingestor.delivery_fences import FENCE_COLLECTION
from scicat_ingestor.domain import apply_event
from scicat_ingestor.store import (
    APPLIED_EVENT_COLLECTION,
    AppliedEvent,
    ConcurrentUpdate,
    CorruptStoredDocument,
    MongoCatalogueStore,
)
from scicat_schemas.documents import (
    DATASET_COLLECTION,
    ORIG_DATABLOCK_COLLECTION,
    PROPOSAL_COLLECTION,
)
from scicat_schemas.runtime.settings import MongoSettings

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(mongo_uri: str, database_name: str) -> AsyncIterator[MongoCatalogueStore]:
    async with MongoCatalogueStore(
        MongoSettings(uri=mongo_uri, database=database_name)
    ).connected() as opened:
        yield opened


@pytest.fixture
def apply(store, policy, acquisitions):
    """Apply a payload under an event id, as the handler does."""

    async def applying(data, event_id: str):
        marker = AppliedEvent(
            identity=f"{acquisitions.producer}\x1f{event_id}",
            type=type(data).__name__,
            pid=policy.dataset_pid(data),
            applied_at=NOW,
        )
        return await store.apply(
            marker, lambda current, _beamtime: apply_event(data, current, policy=policy, now=NOW)
        )

    return applying


async def test_start_up_creates_the_indexes(store, catalogue) -> None:
    dataset_indexes = await catalogue[DATASET_COLLECTION].index_information()
    block_indexes = await catalogue[ORIG_DATABLOCK_COLLECTION].index_information()

    assert any(
        spec["key"] == [("pid", 1)] and spec.get("unique") for spec in dataset_indexes.values()
    )
    assert any(spec["key"] == [("datasetId", 1)] for spec in block_indexes.values())
    proposal_indexes = await catalogue[PROPOSAL_COLLECTION].index_information()
    assert any(spec["key"] == [("proposalId", 1)] for spec in proposal_indexes.values())
    # Written first inside transactions: created before any, so concurrent first batches of
    # several replicas do not conflict over creating them.
    assert {FENCE_COLLECTION, ANNOUNCEMENT_COLLECTION} <= set(
        await catalogue.list_collection_names()
    )
    await store.ensure_indexes()  # again, as every replica does at start-up: nothing fails


async def test_event_is_stored_with_its_marker_in_one_write(apply, catalogue, acquisitions) -> None:
    outcome = await apply(acquisitions.file_closed(size=7), "e1")

    assert outcome.changed and not outcome.already_applied
    stored = await catalogue[DATASET_COLLECTION].find_one({"pid": acquisitions.pid()})
    block = await catalogue[ORIG_DATABLOCK_COLLECTION].find_one({"datasetId": acquisitions.pid()})
    marker = await catalogue[APPLIED_EVENT_COLLECTION].find_one({})
    assert stored["_id"] == acquisitions.pid()
    assert (stored["size"], stored["numberOfFiles"], stored["pipelineRevision"]) == (7, 1, 1)
    assert [f["path"] for f in block["dataFileList"]] == ["a.h5"]
    assert marker["_id"] == f"{acquisitions.producer}\x1fe1"
    assert marker["pid"] == acquisitions.pid()


async def test_returned_dataset_is_the_dataset_as_read_back(apply, store, acquisitions) -> None:
    created = await apply(acquisitions.file_closed(closed_at=acquisitions.at(1.2345678)), "e1")
    assert created.dataset == (await store.load(acquisitions.pid())).dataset

    updated = await apply(acquisitions.run_stopped(), "e2")
    assert updated.dataset == (await store.load(acquisitions.pid())).dataset


async def test_redelivered_event_changes_nothing(apply, catalogue, acquisitions) -> None:
    await apply(acquisitions.file_closed(), "e1")

    again = await apply(acquisitions.file_closed(size=999), "e1")

    assert again.already_applied and not again.changed
    assert again.dataset.pipelineRevision == 1
    stored = await catalogue[DATASET_COLLECTION].find_one({"pid": acquisitions.pid()})
    assert (stored["size"], stored["pipelineRevision"]) == (100, 1)
    assert await catalogue[APPLIED_EVENT_COLLECTION].count_documents({}) == 1


async def test_repeated_fact_under_a_new_id_is_recorded_but_changes_nothing(
    apply, catalogue, acquisitions
) -> None:
    await apply(acquisitions.run_started(), "e1")

    outcome = await apply(acquisitions.run_started(), "e2")

    assert not outcome.changed and not outcome.already_applied
    assert outcome.dataset.pipelineRevision == 1
    assert await catalogue[APPLIED_EVENT_COLLECTION].count_documents({}) == 2


async def test_failure_inside_the_transaction_leaves_no_trace(
    store, catalogue, acquisitions
) -> None:
    def explode(current, beamtime):
        raise RuntimeError("crash between read and write")

    marker = AppliedEvent(identity="x\x1f1", type="file.closed", pid="p/1/2", applied_at=NOW)
    with pytest.raises(RuntimeError):
        await store.apply(marker, explode)

    assert await catalogue[APPLIED_EVENT_COLLECTION].count_documents({}) == 0
    assert await catalogue[DATASET_COLLECTION].count_documents({}) == 0


async def test_field_set_by_another_service_is_kept(apply, catalogue, acquisitions) -> None:
    await apply(acquisitions.run_started(), "e1")
    await catalogue[DATASET_COLLECTION].update_one(
        {"pid": acquisitions.pid()}, {"$set": {"isPublished": True, "keywords": ["doi"]}}
    )

    outcome = await apply(acquisitions.run_stopped(), "e2")

    assert outcome.dataset.isPublished is True
    assert outcome.dataset.keywords == ["doi"]
    assert outcome.dataset.datasetStatus == "success"
    stored = await catalogue[DATASET_COLLECTION].find_one({"pid": acquisitions.pid()})
    assert (stored["isPublished"], stored["pipelineRevision"]) == (True, 2)


async def test_dataset_created_outside_the_pipeline_is_updated_from_revision_zero(
    apply, catalogue, acquisitions
) -> None:
    await catalogue[DATASET_COLLECTION].insert_one(
        {
            "_id": acquisitions.pid(),
            "pid": acquisitions.pid(),
            "datasetName": "made in SciCat",
            "sourceFolder": acquisitions.folder,
            "creationTime": NOW,
            "creationLocation": "/DESY/P08",
            "ownerGroup": "11012345-dmgt",
            "type": "raw",
        }
    )

    outcome = await apply(acquisitions.file_closed(), "e1")

    assert outcome.changed
    assert outcome.dataset.pipelineRevision == 1
    assert outcome.dataset.datasetName == "made in SciCat"
    assert outcome.dataset.numberOfFiles == 1


async def test_damaged_stored_dataset_is_reported_not_retried(
    apply, catalogue, acquisitions
) -> None:
    await catalogue[DATASET_COLLECTION].insert_one({"_id": "x", "pid": acquisitions.pid()})

    with pytest.raises(CorruptStoredDocument, match="not a valid dataset"):
        await apply(acquisitions.file_closed(), "e1")


async def test_write_racing_another_writer_fails_so_the_event_is_retried(
    apply, store, catalogue, mongo_uri, database_name, policy, acquisitions
) -> None:
    """The other writer commits between our read and our write; `decide` is synchronous, so
    the other writer uses a synchronous client from inside it."""
    await apply(acquisitions.run_started(), "e1")
    stop = acquisitions.run_stopped()

    def decide_while_another_writer_commits(current, beamtime):
        with MongoClient(mongo_uri) as other:
            other[database_name][DATASET_COLLECTION].update_one(
                {"pid": acquisitions.pid()}, {"$inc": {"pipelineRevision": 1}}
            )
        return apply_event(stop, current, policy=policy, now=NOW)

    marker = AppliedEvent(
        identity="x\x1fe2", type="run.stopped", pid=acquisitions.pid(), applied_at=NOW
    )
    with pytest.raises((ConcurrentUpdate, OperationFailure)) as failed:
        await store.apply(marker, decide_while_another_writer_commits)

    assert isinstance(failed.value, ConcurrentUpdate) or failed.value.has_error_label(
        "TransientTransactionError"
    )
    assert await catalogue[APPLIED_EVENT_COLLECTION].count_documents({"_id": marker.identity}) == 0
    retried = await store.apply(
        marker, lambda current, _beamtime: apply_event(stop, current, policy=policy, now=NOW)
    )
    assert retried.changed
    assert (retried.dataset.datasetStatus, retried.dataset.pipelineRevision) == ("success", 3)
