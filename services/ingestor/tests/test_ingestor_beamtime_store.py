"""`beamtime.updated` over many datasets: several transactions, file lists untouched, redone
whole when interrupted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from scicat_ingestor import beamtime_announcements, beamtime_completion, datablock_parts
from scicat_ingestor.batch import BatchIngestor
from scicat_ingestor.handlers import AcquisitionHandler
from scicat_ingestor.store import APPLIED_EVENT_COLLECTION, MongoCatalogueStore
from scicat_ingestor.store_values import ConcurrentUpdate
from scicat_pipeline.testing.records import consumer_record
from scicat_schemas.documents import (
    DATASET_COLLECTION,
    ORIG_DATABLOCK_COLLECTION,
    PROPOSAL_COLLECTION,
)
from scicat_schemas.runtime.consumer import Rejected
from scicat_schemas.runtime.settings import MongoSettings
from scicat_schemas.topics import ACQUISITION_EVENTS, PROPOSALS_EVENTS

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)
RUNS = 7


@pytest.fixture
async def store(mongo_uri: str, database_name: str) -> AsyncIterator[MongoCatalogueStore]:
    async with MongoCatalogueStore(
        MongoSettings(uri=mongo_uri, database=database_name), datablock_max_files=2
    ).connected() as opened:
        yield opened


@pytest.fixture
def ingest(store, batch_ingest_into):
    return batch_ingest_into(store)


@pytest.fixture
def fail_next_marker(monkeypatch):
    """`fail_next_marker()`: the next beamtime marker's transaction fails, after every chunk
    was committed."""
    record_applied = beamtime_completion.record_applied
    failures: list[Exception] = []

    async def flaky(db, marker, session) -> None:
        if failures:
            raise failures.pop()
        await record_applied(db, marker, session)

    monkeypatch.setattr(beamtime_completion, "record_applied", flaky)
    return lambda: failures.append(ConnectionError("MongoDB went away before the marker"))


async def test_a_beamtime_of_many_datasets_is_completed_in_several_transactions(
    ingest, catalogue, acquisitions, monkeypatch
) -> None:
    monkeypatch.setattr(beamtime_completion, "BEAMTIME_DATASETS_PER_TRANSACTION", 3)
    files = [
        (ACQUISITION_EVENTS, acquisitions.envelope(acquisitions.file_closed(name, run_id=run)))
        for run in (f"scan_{n:02d}" for n in range(RUNS))
        for name in ("a.h5", "b.h5", "c.h5")
    ]
    await ingest(*files)
    before = await catalogue[ORIG_DATABLOCK_COLLECTION].find({}, {"dataFileList": 1}).to_list()
    update = (PROPOSALS_EVENTS, acquisitions.beamtime_updated(beamline="p10"))

    assert await ingest(update) == [None]
    assert await ingest(update) == [None]

    datasets = await catalogue[DATASET_COLLECTION].find({}).to_list()
    assert len(datasets) == RUNS
    assert all("p10staff" in d["accessGroups"] and "20230042" in d["proposalIds"] for d in datasets)
    assert all(d["pipelineRevision"] == 4 for d in datasets)  # 3 files, then the beamtime once
    blocks = await catalogue[ORIG_DATABLOCK_COLLECTION].find({}).to_list()
    assert len(blocks) == 2 * RUNS
    assert all("p10staff" in b["accessGroups"] for b in blocks)
    after = await catalogue[ORIG_DATABLOCK_COLLECTION].find({}, {"dataFileList": 1}).to_list()
    assert sorted(map(str, after)) == sorted(map(str, before))
    markers = await catalogue[APPLIED_EVENT_COLLECTION].count_documents(
        {"pid": {"$regex": "^beamtime:"}}
    )
    assert markers == 1


async def test_an_interrupted_beamtime_update_is_redone_and_recorded_once(
    ingest, store, catalogue, acquisitions, monkeypatch, fail_next_marker
) -> None:
    monkeypatch.setattr(beamtime_completion, "BEAMTIME_DATASETS_PER_TRANSACTION", 2)
    await ingest(
        *(
            (ACQUISITION_EVENTS, acquisitions.envelope(acquisitions.file_closed(run_id=run)))
            for run in (f"scan_{n:02d}" for n in range(RUNS))
        )
    )
    update = (PROPOSALS_EVENTS, acquisitions.beamtime_updated())
    fail_next_marker()

    with pytest.raises(ConnectionError):
        await ingest(update)
    completed = await catalogue[DATASET_COLLECTION].count_documents({"proposalIds": "20230042"})
    assert await ingest(update) == [None]

    assert completed == RUNS  # every chunk was committed before the marker failed
    datasets = await catalogue[DATASET_COLLECTION].find({}).to_list()
    assert all(d["pipelineRevision"] == 2 for d in datasets)  # the redo changed nothing
    markers = await catalogue[APPLIED_EVENT_COLLECTION].count_documents(
        {"pid": {"$regex": "^beamtime:"}}
    )
    assert markers == 1


@pytest.fixture
def published() -> _Published:
    return _Published()


@pytest.fixture
def ingest_published(store, policy, published):
    """`handle_batch` of `(topic, value)` records, announcing into `published`."""
    handler = AcquisitionHandler(store=store, events=published, policy=policy, clock=lambda: NOW)
    batcher = BatchIngestor(handler, store, published)

    async def ingesting(*values: tuple[str, bytes]) -> list:
        records = [consumer_record(t, v, offset=n) for n, (t, v) in enumerate(values)]
        return await batcher.handle_batch(records)

    return ingesting


async def _runs(ingest, acquisitions, count: int = RUNS) -> list[str]:
    runs = [f"scan_{n:02d}" for n in range(count)]
    await ingest(
        *(
            (ACQUISITION_EVENTS, acquisitions.envelope(acquisitions.file_closed(run_id=run)))
            for run in runs
        )
    )
    return [f"test/{acquisitions.beamtime}/{run}" for run in runs]


async def test_a_beamtime_update_announces_only_the_datasets_it_changed(
    ingest_published, published, acquisitions, catalogue
) -> None:
    """A DOOR export sent again with a new title changes the proposals, not the datasets
    (they keep the description they have): nothing to re-index."""
    pids = await _runs(ingest_published, acquisitions)
    await ingest_published((PROPOSALS_EVENTS, acquisitions.beamtime_updated()))
    assert sorted(d.pid for d in published.datasets[RUNS:]) == pids
    published.datasets.clear()

    retitled = acquisitions.beamtime_updated(title="Thin films under more strain")
    assert await ingest_published((PROPOSALS_EVENTS, retitled)) == [None]
    assert published.datasets == []
    beamtime = await catalogue[PROPOSAL_COLLECTION].find_one({"_id": acquisitions.beamtime})
    assert beamtime["title"] == "Thin films under more strain"

    moved = acquisitions.beamtime_updated(beamline="p10")
    assert await ingest_published((PROPOSALS_EVENTS, moved)) == [None]
    assert sorted(d.pid for d in published.datasets) == pids
    assert all("p10staff" in d.accessGroups for d in published.datasets)


async def test_a_redelivered_beamtime_update_publishes_again_only_until_it_has_announced(
    ingest_published, published, acquisitions, monkeypatch
) -> None:
    """Recorded, it may still have crashed before clearing its flag (before the consumer
    committed its offset): then every dataset is published again (without reading a file
    list); once cleared, none."""
    pids = await _runs(ingest_published, acquisitions)
    update = (PROPOSALS_EVENTS, acquisitions.beamtime_updated())
    clear = beamtime_announcements.announced
    crashes = [ConnectionError("the ingestor died after the marker")]

    async def crashing(db, beamtime_id, identity) -> None:
        if crashes:
            raise crashes.pop()
        await clear(db, beamtime_id, identity)

    monkeypatch.setattr(beamtime_announcements, "announced", crashing)
    with pytest.raises(ConnectionError):
        await ingest_published(update)
    published.datasets.clear()

    def no_file_lists(*_args, **_kwargs):
        raise AssertionError("a file list was read")

    monkeypatch.setattr(datablock_parts, "merged", no_file_lists)
    assert await ingest_published(update) == [None]
    assert sorted(d.pid for d in published.datasets) == pids
    assert all(d.pipelineRevision == 2 for d in published.datasets)
    published.datasets.clear()

    assert await ingest_published(update) == [None]
    assert published.datasets == []


async def test_after_an_update_died_before_announcing_its_retry_announces_every_dataset(
    ingest_published, published, acquisitions, monkeypatch
) -> None:
    """The first chunk's changes were committed, their announcement failed: the retry finds
    them completed already ("unchanged"), and the flag the update left makes it announce every
    dataset, those of later chunks too."""
    monkeypatch.setattr(beamtime_completion, "BEAMTIME_DATASETS_PER_TRANSACTION", 2)
    pids = await _runs(ingest_published, acquisitions)
    await ingest_published((PROPOSALS_EVENTS, acquisitions.beamtime_updated(beamline="p10")))
    published.datasets.clear()
    moved = (PROPOSALS_EVENTS, acquisitions.beamtime_updated(beamline="p08"))
    published.fail_next = ConnectionError("Kafka went away before the acknowledgements")
    with pytest.raises(ConnectionError):
        await ingest_published(moved)
    assert published.datasets == []

    assert await ingest_published(moved) == [None]

    assert sorted(d.pid for d in published.datasets) == pids
    assert all("p08staff" in d.accessGroups for d in published.datasets)


async def test_an_update_announces_each_chunk_once_it_is_committed(
    ingest_published, published, acquisitions, monkeypatch, fail_next_marker
) -> None:
    """Not the whole beamtime at the end (held in memory, announced late): what the update
    changed is announced even when it then fails before its marker."""
    monkeypatch.setattr(beamtime_completion, "BEAMTIME_DATASETS_PER_TRANSACTION", 2)
    pids = await _runs(ingest_published, acquisitions)
    await ingest_published((PROPOSALS_EVENTS, acquisitions.beamtime_updated()))
    published.datasets.clear()
    fail_next_marker()

    with pytest.raises(ConnectionError):
        await ingest_published((PROPOSALS_EVENTS, acquisitions.beamtime_updated(beamline="p10")))

    assert sorted(d.pid for d in published.datasets) == pids
    assert all("p10staff" in d.accessGroups for d in published.datasets)


async def test_only_the_update_that_flagged_a_beamtime_clears_its_flag(
    store, catalogue, acquisitions
) -> None:
    """A consumer that lost the partition and announces late leaves its successor's flag."""
    db = store._db
    beamtime = acquisitions.beamtime
    assert await beamtime_announcements.flagged(db, beamtime)  # unknown: flagged
    await beamtime_announcements.flag(db, beamtime, "first")
    await beamtime_announcements.flag(db, beamtime, "second")

    await beamtime_announcements.announced(db, beamtime, "first")
    assert await beamtime_announcements.flagged(db, beamtime)

    await beamtime_announcements.announced(db, beamtime, "second")
    assert not await beamtime_announcements.flagged(db, beamtime)
    assert not await beamtime_announcements.flag(db, beamtime, "third")  # was not flagged
    assert await beamtime_announcements.flag(db, beamtime, "fourth")  # "third" still pending


class _Published:
    def __init__(self) -> None:
        self.datasets: list = []
        self.fail_next: Exception | None = None

    async def dataset_stored(self, dataset) -> None:
        await self.datasets_stored([dataset])

    async def datasets_stored(self, datasets) -> None:
        if self.fail_next is not None and datasets:
            failure, self.fail_next = self.fail_next, None
            raise failure
        self.datasets.extend(datasets)


async def test_a_dataset_changed_while_its_chunk_completes_fails_the_update_for_a_retry(
    ingest_published, published, acquisitions, monkeypatch, mongo_uri, database_name
) -> None:
    """Completion writes conditionally on the revision it read, as every writer does."""
    pids = await _runs(ingest_published, acquisitions, count=3)
    published.datasets.clear()
    read = beamtime_completion.dataset_from
    raced: list[str] = []

    def racing(doc):
        if not raced:
            raced.append(doc["pid"])
            with MongoClient(mongo_uri) as other:
                other[database_name][DATASET_COLLECTION].update_one(
                    {"pid": doc["pid"]}, {"$inc": {"pipelineRevision": 1}}
                )
        return read(doc)

    monkeypatch.setattr(beamtime_completion, "dataset_from", racing)
    update = (PROPOSALS_EVENTS, acquisitions.beamtime_updated())

    with pytest.raises((ConcurrentUpdate, OperationFailure)):
        await ingest_published(update)
    assert await ingest_published(update) == [None]

    assert sorted(d.pid for d in published.datasets) == pids
    assert all("20230042" in d.proposalIds for d in published.datasets)
    assert next(d for d in published.datasets if d.pid == raced[0]).pipelineRevision == 3


async def test_a_damaged_dataset_does_not_keep_the_others_from_their_beamtime(
    ingest_published, published, acquisitions, catalogue
) -> None:
    """The others are completed and announced (their new access groups reach the index); the
    update is dead-lettered naming the damaged one, and its replay after the repair completes
    that one too."""
    pids = await _runs(ingest_published, acquisitions, count=3)
    damaged = pids[1]
    await catalogue[DATASET_COLLECTION].update_one(
        {"pid": damaged}, {"$set": {"creationTime": "yesterday-ish"}}
    )
    published.datasets.clear()
    update = (PROPOSALS_EVENTS, acquisitions.beamtime_updated())

    [refused] = await ingest_published(update)

    assert isinstance(refused, Rejected) and refused.error_type == "invalid-stored-document"
    assert damaged in refused.reason and "repair them and replay" in refused.reason
    assert sorted(d.pid for d in published.datasets) == [pids[0], pids[2]]
    assert all("20230042" in d.proposalIds for d in published.datasets)
    published.datasets.clear()

    await catalogue[DATASET_COLLECTION].update_one(
        {"pid": damaged}, {"$set": {"creationTime": acquisitions.at(0)}}
    )
    assert await ingest_published(update) == [None]  # the dead letter, replayed

    assert [d.pid for d in published.datasets] == [damaged]
    assert "20230042" in published.datasets[0].proposalIds
