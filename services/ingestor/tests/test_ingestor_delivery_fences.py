"""`DEDUPLICATION=offsets`: batches recorded by their Kafka offsets, on SecantusDB."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from scicat_ingestor import delivery_fences
from scicat_ingestor.app import create_app
from scicat_ingestor.batch import BatchIngestor
from scicat_ingestor.delivery_fences import FENCE_COLLECTION
from scicat_ingestor.handlers import AcquisitionHandler, decode_acquisition_event
from scicat_ingestor.settings import Settings
from scicat_ingestor.store import APPLIED_EVENT_COLLECTION, MongoCatalogueStore
from scicat_ingestor.store_values import ConcurrentUpdate
from scicat_pipeline.testing import wait_for
from scicat_pipeline.testing.records import consumer_record
from scicat_schemas.documents import (
    DATASET_COLLECTION,
    INGESTOR_APPLIED_EVENTS,
    ORIG_DATABLOCK_COLLECTION,
)
from scicat_schemas.runtime import dead_letter
from scicat_schemas.runtime.consumer import Rejected
from scicat_schemas.runtime.settings import MongoSettings
from scicat_schemas.topics import ACQUISITION_EVENTS

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)
WINDOW = 100
"""The refusals `fenced_store` (conftest) keeps below a fence."""


@pytest.fixture
def store(fenced_store):
    return fenced_store


@pytest.fixture
def ingest(fenced_ingest):
    return fenced_ingest


async def files_of(catalogue, pid: str) -> list[tuple[str, int]]:
    block = await catalogue[ORIG_DATABLOCK_COLLECTION].find_one({"datasetId": pid})
    return [(f["path"], f["size"]) for f in block["dataFileList"]]


async def test_a_redelivered_batch_changes_nothing_and_writes_no_marker(
    ingest, catalogue, published, acquisitions
) -> None:
    pid = acquisitions.pid()
    batch = [
        (0, acquisitions.envelope(acquisitions.run_started(), id="e1")),
        (1, acquisitions.envelope(acquisitions.file_closed("a.h5", size=5), id="e2")),
    ]
    assert await ingest(*batch) == [None, None]
    first = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    published.stored.clear()

    assert await ingest(*batch) == [None, None]

    again = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    assert again["pipelineRevision"] == first["pipelineRevision"]
    assert await files_of(catalogue, pid) == [("a.h5", 5)]
    # published again: the first delivery may have crashed before publishing
    assert [(d.pid, d.pipelineRevision) for d in published.stored] == [
        (pid, first["pipelineRevision"])
    ]
    assert await catalogue[APPLIED_EVENT_COLLECTION].count_documents({}) == 0
    fence = await catalogue[FENCE_COLLECTION].find_one({"_id": f"{ACQUISITION_EVENTS}/0"})
    assert fence["next"] == 2
    # the start's identity, which a copy produced again must meet, is kept with its dataset
    assert [i.split("\x1f")[-1] for i in again[INGESTOR_APPLIED_EVENTS]] == ["e1"]
    assert all(INGESTOR_APPLIED_EVENTS not in d.model_dump() for d in published.stored)


async def test_a_stale_redelivery_below_the_fence_does_not_undo_a_newer_change(
    ingest, catalogue, acquisitions
) -> None:
    """Offsets order what identities cannot: the file rewritten at offset 2 stays rewritten."""
    pid = acquisitions.pid()
    old = (0, acquisitions.envelope(acquisitions.file_closed("a.h5", size=5), id="old"))
    await ingest(old)
    await ingest((1, acquisitions.envelope(acquisitions.file_closed("a.h5", size=9), id="new")))

    assert await ingest(old) == [None]

    assert await files_of(catalogue, pid) == [("a.h5", 9)]


async def test_a_refused_record_is_refused_again_when_its_batch_comes_back(
    ingest, catalogue, acquisitions
) -> None:
    """Its dead letter may not have been sent when the consumer crashed after the commit."""
    good = (0, acquisitions.envelope(acquisitions.file_closed("a.h5"), id="e1"))
    bad = (1, acquisitions.envelope(acquisitions.file_closed(metadata={"$where": 1}), id="e2"))

    [_, refused] = await ingest(good, bad)
    [ok, refused_again] = await ingest(good, bad)

    assert isinstance(refused, Rejected) and "'$where'" in refused.reason
    assert ok is None
    assert isinstance(refused_again, Rejected)
    assert (refused_again.reason, refused_again.error_type) == (
        refused.reason,
        refused.error_type,
    )
    fence = await catalogue[FENCE_COLLECTION].find_one({"_id": f"{ACQUISITION_EVENTS}/0"})
    assert [offset for offset, *_ in fence["refused"]] == [1]


async def test_refusals_are_kept_only_for_the_window_below_the_fence(
    ingest, catalogue, acquisitions
) -> None:
    bad = acquisitions.envelope(acquisitions.file_closed(metadata={"$where": 1}))
    await ingest((0, bad))
    await ingest((WINDOW - 1, acquisitions.envelope(acquisitions.file_closed("a.h5"))))
    kept = await catalogue[FENCE_COLLECTION].find_one({"_id": f"{ACQUISITION_EVENTS}/0"})
    assert kept["next"] == WINDOW and [offset for offset, *_ in kept["refused"]] == [0]

    await ingest((WINDOW, acquisitions.envelope(acquisitions.file_closed("b.h5"))))

    pruned = await catalogue[FENCE_COLLECTION].find_one({"_id": f"{ACQUISITION_EVENTS}/0"})
    assert pruned["next"] == WINDOW + 1 and pruned["refused"] == []


async def test_a_consumer_that_lost_its_partition_fails_instead_of_applying_twice(
    ingest, catalogue, acquisitions, mongo_uri, database_name, monkeypatch
) -> None:
    """Another consumer moves the fence between this one's read and its write (a rebalance);
    the retried batch then skips what the other applied."""
    pid = acquisitions.pid()
    await ingest((0, acquisitions.envelope(acquisitions.file_closed("a.h5"))))
    late = [
        (1, acquisitions.envelope(acquisitions.file_closed("b.h5"))),
        (2, acquisitions.envelope(acquisitions.file_closed("c.h5"))),
    ]
    advance = delivery_fences.advance_fences
    raced: list[bool] = []

    async def racing(db, session, read, applied, window):
        if not raced:
            raced.append(True)
            with MongoClient(mongo_uri) as other:
                other[database_name][FENCE_COLLECTION].update_one(
                    {"_id": f"{ACQUISITION_EVENTS}/0"}, {"$set": {"next": 3}}
                )
        await advance(db, session, read, applied, window)

    monkeypatch.setattr("scicat_ingestor.batch_store.advance_fences", racing)

    with pytest.raises((ConcurrentUpdate, OperationFailure)):
        await ingest(*late)
    assert await files_of(catalogue, pid) == [("a.h5", 100)]

    assert await ingest(*late) == [None, None]
    assert await files_of(catalogue, pid) == [("a.h5", 100)]  # the other consumer's to apply


async def test_an_event_produced_twice_is_applied_again_as_a_repeated_fact(
    ingest, catalogue, acquisitions
) -> None:
    """What offsets give up: the same CloudEvent at a new offset is not recognised by identity;
    repeating a fact, it changes nothing."""
    pid = acquisitions.pid()
    event = acquisitions.envelope(acquisitions.file_closed("a.h5", size=5), id="e1")
    await ingest((0, event))
    first = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})

    assert await ingest((1, event)) == [None]

    again = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    assert again["pipelineRevision"] == first["pipelineRevision"]
    assert await files_of(catalogue, pid) == [("a.h5", 5)]


async def test_an_event_produced_again_after_a_newer_change_does_not_undo_it(
    ingest, catalogue, acquisitions
) -> None:
    """Not recognised by its identity at a new offset, a stale copy is older than the file's
    record, so the domain leaves the newer record."""
    pid = acquisitions.pid()
    first = acquisitions.envelope(
        acquisitions.file_closed("a.h5", size=5, closed_at=acquisitions.at(10)), id="e1"
    )
    await ingest((0, first))
    await ingest(
        (
            1,
            acquisitions.envelope(
                acquisitions.file_closed("a.h5", size=9, closed_at=acquisitions.at(20))
            ),
        )
    )

    assert await ingest((2, first)) == [None]

    assert await files_of(catalogue, pid) == [("a.h5", 9)]


async def test_without_deliveries_the_store_records_identities(
    store, catalogue, acquisitions, policy, published
) -> None:
    """The back-fill command has no Kafka offsets: its events are recorded by identity."""
    handler = AcquisitionHandler(store=store, events=published, policy=policy, clock=lambda: NOW)
    batcher = BatchIngestor(handler, store, published)
    event = decode_acquisition_event(acquisitions.envelope(acquisitions.file_closed("a.h5")))
    outcomes: list[Any] = [None]
    await batcher.apply_in_order([(0, event)], outcomes)

    assert outcomes == [None]
    assert await catalogue[APPLIED_EVENT_COLLECTION].count_documents({}) == 1
    assert await catalogue[FENCE_COLLECTION].count_documents({}) == 0


def test_offsets_keep_refusals_one_batch_back() -> None:
    assert Settings(deduplication="identity").fence_window() is None
    offsets = Settings(batch_max_records=250)  # deduplication by offsets is the default
    assert offsets.fence_window() == 250


@pytest.mark.parametrize("deduplication", ["offsets", "identity"])
async def test_the_service_ingests_across_a_restart_and_dead_letters_a_refusal(
    deduplication, settings, kafka_io, catalogue, acquisitions
) -> None:
    """On the embedded stack: a run, a refused record, a restart mid-run; by default no
    identity marker."""
    offsets = settings.model_copy(update={"deduplication": deduplication})
    pid = acquisitions.pid()

    first = create_app(offsets)
    async with first.router.lifespan_context(first):
        await kafka_io.produce(
            acquisitions.envelope(acquisitions.run_started()),
            acquisitions.envelope(acquisitions.file_closed("a.h5")),
            acquisitions.envelope(acquisitions.file_closed(metadata={"$where": 1})),
        )
        await wait_for(_files(catalogue, pid, 1), what="the first file")
        [letter] = await kafka_io.read("ingestor.dlq", 1)
    second = create_app(offsets)
    async with second.router.lifespan_context(second):
        await kafka_io.produce(
            acquisitions.envelope(acquisitions.file_closed("b.h5")),
            acquisitions.envelope(acquisitions.run_stopped()),
        )
        stopped = await wait_for(_files(catalogue, pid, 2, stopped=True), what="the whole run")

    assert stopped["datasetStatus"] == "success" and stopped["numberOfFiles"] == 2
    assert "'$where'" in dict(letter.headers)[dead_letter.REASON].decode()
    markers = await catalogue[APPLIED_EVENT_COLLECTION].distinct("types")
    fences = await catalogue[FENCE_COLLECTION].find().to_list()
    if deduplication == "offsets":
        assert markers == []
        assert [fence["refused"][0][1] for fence in fences] == ["invalid"]
    else:
        assert sorted(markers) == ["file.closed", "run.started", "run.stopped"]
        assert fences == []


def _files(catalogue, pid: str, count: int, *, stopped: bool = False):
    async def probe():
        doc = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
        if doc is None or doc.get("numberOfFiles") != count:
            return None
        return doc if not stopped or doc.get("endTime") is not None else None

    return probe


async def test_after_the_switch_from_identities_a_redelivery_is_still_recognised(
    ingest, catalogue, acquisitions, mongo_uri, database_name, policy, published
) -> None:
    """Until its first fence, a partition's events are also looked up among the markers."""
    pid = acquisitions.pid()
    old = acquisitions.envelope(acquisitions.file_closed("a.h5", size=5), id="e1")
    async with MongoCatalogueStore(
        MongoSettings(uri=mongo_uri, database=database_name)
    ).connected() as by_identity:
        handler = AcquisitionHandler(
            store=by_identity, events=published, policy=policy, clock=lambda: NOW
        )
        await BatchIngestor(handler, by_identity, published).handle_batch(
            [consumer_record(ACQUISITION_EVENTS, old, offset=0)]
        )
    newer = acquisitions.envelope(acquisitions.file_closed("a.h5", size=9), id="e2")
    await ingest((1, newer))  # fences the partition after offset 1...

    # ...as if it had not (the first offsets-mode batch is the one redelivered):
    await catalogue[FENCE_COLLECTION].delete_many({})
    assert await ingest((0, old)) == [None]

    assert await files_of(catalogue, pid) == [("a.h5", 9)]
