"""File lists in parts on SecantusDB, through both paths: batches and single events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from scicat_ingestor import datablock_parts
from scicat_ingestor.handlers import AcquisitionHandler
from scicat_ingestor.store import MongoCatalogueStore
from scicat_ingestor.store_values import ConcurrentUpdate
from scicat_pipeline.testing.records import consumer_record
from scicat_schemas.documents import DATASET_COLLECTION, ORIG_DATABLOCK_COLLECTION, OrigDatablock
from scicat_schemas.runtime.settings import MongoSettings
from scicat_schemas.topics import ACQUISITION_EVENTS, PROPOSALS_EVENTS

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)
MAX_FILES = 3


@pytest.fixture
def open_store(mongo_uri: str, database_name: str):
    """A store as a new ingestor process opens it (nothing remembered)."""
    return lambda: MongoCatalogueStore(
        MongoSettings(uri=mongo_uri, database=database_name), datablock_max_files=MAX_FILES
    ).connected()


@pytest.fixture
async def store(open_store) -> AsyncIterator[MongoCatalogueStore]:
    async with open_store() as opened:
        yield opened


@pytest.fixture
def ingest(store, batch_ingest_into):
    return batch_ingest_into(store)


async def parts(catalogue, pid: str) -> list[dict]:
    cursor = catalogue[ORIG_DATABLOCK_COLLECTION].find({"datasetId": pid}).sort("pipelinePart", 1)
    return await cursor.to_list()


def files(acquisitions, *names: str) -> list[bytes]:
    return [acquisitions.envelope(acquisitions.file_closed(name, size=10)) for name in names]


async def test_a_batch_stores_a_long_list_in_parts_and_the_next_rewrites_only_the_last(
    ingest, catalogue, acquisitions
) -> None:
    pid = acquisitions.pid()

    assert await ingest(*files(acquisitions, *"abcdefg")) == [None] * 7
    first = await parts(catalogue, pid)
    assert await ingest(*files(acquisitions, "h", "a")) == [None, None]
    second = await parts(catalogue, pid)

    assert [[f["path"] for f in p["dataFileList"]] for p in first] == [
        ["a", "b", "c"],
        ["d", "e", "f"],
        ["g"],
    ]
    assert [p["_id"] for p in first] == [OrigDatablock.id_for(pid, k) for k in range(3)]
    assert second[:2] == first[:2]
    assert [f["path"] for f in second[2]["dataFileList"]] == ["g", "h"]
    assert second[2]["size"] == 20
    dataset = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    assert (dataset["numberOfFiles"], dataset["size"]) == (8, 80)


async def test_the_store_loads_the_parts_as_one_list(store, ingest, acquisitions) -> None:
    await ingest(*files(acquisitions, *"abcdefg"))

    entry = await store.load(acquisitions.pid())

    assert entry is not None and entry.datablock is not None
    assert [f.path for f in entry.datablock.dataFileList] == list("abcdefg")
    assert entry.datablock.size == 70


async def test_a_single_datablock_of_an_earlier_version_is_split_at_the_next_change(
    ingest, open_store, batch_ingest_into, catalogue, acquisitions
) -> None:
    pid = acquisitions.pid()
    await ingest(*files(acquisitions, *"abcde"))
    merged = [f for p in await parts(catalogue, pid) for f in p["dataFileList"]]
    legacy = {
        "_id": OrigDatablock.id_for(pid),
        "datasetId": pid,
        "size": 50,
        "chkAlg": None,
        "dataFileList": merged,
        "ownerGroup": "11012345-dmgt",
        "accessGroups": [],
    }
    await catalogue[ORIG_DATABLOCK_COLLECTION].delete_many({"datasetId": pid})
    await catalogue[ORIG_DATABLOCK_COLLECTION].insert_one(legacy)

    async with open_store() as upgraded:
        assert await batch_ingest_into(upgraded)(*files(acquisitions, "f")) == [None]

    stored = await parts(catalogue, pid)
    assert [len(p["dataFileList"]) for p in stored] == [3, 3]
    assert [p["pipelinePart"] for p in stored] == [0, 1]


async def test_the_per_event_path_appends_to_the_last_part(
    store, policy, nothing_published, ingest, catalogue, acquisitions
) -> None:
    pid = acquisitions.pid()
    await ingest(*files(acquisitions, *"abcdefg"))
    first = await parts(catalogue, pid)
    handler = AcquisitionHandler(
        store=store, events=nothing_published, policy=policy, clock=lambda: NOW
    )

    [value] = files(acquisitions, "h")
    await handler.handle(consumer_record(ACQUISITION_EVENTS, value, offset=9))
    await handler.handle(consumer_record(ACQUISITION_EVENTS, value, offset=9))

    stored = await parts(catalogue, pid)
    assert stored[:2] == first[:2]
    assert [f["path"] for f in stored[2]["dataFileList"]] == ["g", "h"]


async def test_a_beamtime_update_on_the_per_event_path_keeps_the_parts(
    ingest, catalogue, acquisitions
) -> None:
    pid = acquisitions.pid()
    await ingest(*files(acquisitions, *"abcdefg"))
    first = await parts(catalogue, pid)
    update = acquisitions.beamtime_updated(core_path="/gpfs/current")

    assert await ingest((PROPOSALS_EVENTS, update)) == [None]

    dataset = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    assert dataset["pipelineRevision"] == 8 and "20230042" in dataset["proposalIds"]
    assert await parts(catalogue, pid) == first


async def test_a_file_list_this_process_committed_is_not_reloaded_while_its_dataset_is_unchanged(
    ingest, catalogue, acquisitions, monkeypatch
) -> None:
    pid = acquisitions.pid()
    loaded: list[int] = []
    merged = datablock_parts.merged

    def counted(docs, max_files):
        loaded.append(len(docs))
        return merged(docs, max_files)

    monkeypatch.setattr(datablock_parts, "merged", counted)

    await ingest(*files(acquisitions, *"abcdefg"))
    await ingest(*files(acquisitions, "h"))
    assert loaded == []
    await catalogue[DATASET_COLLECTION].update_one({"pid": pid}, {"$set": {"isPublished": True}})
    await ingest(*files(acquisitions, "i"))
    await ingest(*files(acquisitions, "j"))

    assert loaded == [3]
    stored = await parts(catalogue, pid)
    assert [[f["path"] for f in p["dataFileList"]] for p in stored] == [
        list("abc"),
        list("def"),
        list("ghi"),
        list("j"),
    ]
    dataset = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    assert (dataset["isPublished"], dataset["numberOfFiles"]) == (True, 10)


async def test_parts_left_behind_by_a_deleted_dataset_are_overwritten_by_its_new_list(
    ingest, catalogue, acquisitions
) -> None:
    """A new dataset's parts are inserted, except parts found in its name (someone deleted the
    dataset by hand and left its file list): those are replaced, so the batch never fails on
    them for ever."""
    pid = acquisitions.pid()
    await ingest(*files(acquisitions, *"abcd"))
    await catalogue[DATASET_COLLECTION].delete_one({"pid": pid})

    assert await ingest(*files(acquisitions, "x")) == [None]

    [part, orphan] = await parts(catalogue, pid)
    assert [f["path"] for f in part["dataFileList"]] == ["x"]
    assert [f["path"] for f in orphan["dataFileList"]] == ["d"]  # as before: left alone
    dataset = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    assert (dataset["numberOfFiles"], dataset["size"]) == (1, 10)


async def test_a_part_created_after_the_read_fails_the_batch_and_the_retry_succeeds(
    ingest, catalogue, acquisitions, mongo_uri, database_name, monkeypatch
) -> None:
    pid = acquisitions.pid()
    operations = datablock_parts.operations
    raced: list[str] = []

    def racing(upserts, deletes, *, stored=None):
        if not raced:  # another writer stores the part the transaction saw absent
            raced.append(upserts[0]["_id"])
            with MongoClient(mongo_uri) as other:
                other[database_name][ORIG_DATABLOCK_COLLECTION].insert_one(
                    {**upserts[0], "dataFileList": []}
                )
        return operations(upserts, deletes, stored=stored)

    monkeypatch.setattr(datablock_parts, "operations", racing)

    with pytest.raises((ConcurrentUpdate, OperationFailure)) as failed:
        await ingest(*files(acquisitions, "a", "b"))
    assert isinstance(failed.value, ConcurrentUpdate) or failed.value.has_error_label(
        "TransientTransactionError"
    )
    assert await catalogue[DATASET_COLLECTION].count_documents({"pid": pid}) == 0

    assert await ingest(*files(acquisitions, "a", "b")) == [None, None]
    [part] = await parts(catalogue, pid)
    assert raced == [part["_id"]]
    assert [f["path"] for f in part["dataFileList"]] == ["a", "b"]
