"""`DEDUPLICATION=offsets`: batches recorded by their Kafka offsets, on SecantusDB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from scicat_ingestor import delivery_fences
from scicat_ingestor.app import create_app
from scicat_ingestor.applied_events import KEPT_IDENTITIES_MAX, keeping
from scicat_ingestor.batch import BatchIngestor
from scicat_ingestor.catalogue_entry import REPORT_FIELD
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


@pytest.fixture
async def store(mongo_uri: str, database_name: str) -> AsyncIterator[MongoCatalogueStore]:
    async with MongoCatalogueStore(
        MongoSettings(uri=mongo_uri, database=database_name), fence_window=WINDOW
    ).connected() as opened:
        yield opened


@pytest.fixture
def ingest(store, published, policy):
    """`handle_batch` of `(offset, value)` records of partition 0, as the consumer hands them."""
    handler = AcquisitionHandler(store=store, events=published, policy=policy, clock=lambda: NOW)
    batcher = BatchIngestor(handler, store, published)

    async def ingesting(*records: tuple[int, bytes]) -> list[Any]:
        return await batcher.handle_batch(
            [
                consumer_record(ACQUISITION_EVENTS, value, offset=offset, key=b"scan_0042")
                for offset, value in records
            ]
        )

    return ingesting


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


async def test_a_start_or_stop_produced_again_after_a_newer_change_does_not_undo_it(
    ingest, catalogue, acquisitions
) -> None:
    """Merged again, its old value would replace the newer one: it is recognised by the
    identity its dataset keeps, without a marker."""
    pid = acquisitions.pid()

    def energy(value: float) -> dict[str, Any]:
        return {"energy": {"value": value, "unit": "keV"}}

    start = acquisitions.envelope(acquisitions.run_started(metadata=energy(10)), id="e1")
    stop = acquisitions.envelope(acquisitions.run_stopped(metadata=energy(12)), id="e2")
    second_stop = acquisitions.envelope(acquisitions.run_stopped(metadata=energy(13)), id="e3")
    await ingest((0, start), (1, stop))
    await ingest((2, second_stop))
    newest = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})

    assert await ingest((3, start)) == [None]
    assert await ingest((4, stop), (5, start)) == [None, None]

    again = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    assert again["scientificMetadata"]["energy"]["value"] == 13
    assert again["pipelineRevision"] == newest["pipelineRevision"]
    assert await catalogue[APPLIED_EVENT_COLLECTION].count_documents({}) == 0


async def test_a_start_that_changed_nothing_is_kept_too(ingest, catalogue, acquisitions) -> None:
    """A start repeating the facts under a new identity changes nothing; its identity is still
    kept (without a new revision), as a later copy of it would undo the stop's value."""
    pid = acquisitions.pid()
    metadata = {"energy": {"value": 10, "unit": "keV"}}
    await ingest((0, acquisitions.envelope(acquisitions.run_started(metadata=metadata), id="e1")))
    before = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    repeat = acquisitions.envelope(acquisitions.run_started(metadata=metadata), id="e2")

    assert await ingest((1, repeat)) == [None]

    kept = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    assert kept["pipelineRevision"] == before["pipelineRevision"]
    assert [i.split("\x1f")[-1] for i in kept[INGESTOR_APPLIED_EVENTS]] == ["e1", "e2"]
    newer = {"energy": {"value": 12, "unit": "keV"}}
    await ingest((2, acquisitions.envelope(acquisitions.run_stopped(metadata=newer), id="e3")))
    assert await ingest((3, repeat)) == [None]
    again = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    assert again["scientificMetadata"]["energy"]["value"] == 12


async def test_a_file_report_carrying_metadata_produced_again_does_not_undo_a_newer_value(
    ingest, catalogue, acquisitions
) -> None:
    """A long run may have thousands of such reports: the file record each makes names it."""
    pid = acquisitions.pid()
    report = acquisitions.envelope(
        acquisitions.file_closed("a.h5", metadata={"temperature": {"value": 4, "unit": "K"}}),
        id="e1",
    )
    await ingest((0, report))
    newer = acquisitions.run_stopped(metadata={"temperature": {"value": 5, "unit": "K"}})
    await ingest((1, acquisitions.envelope(newer, id="e2")))

    assert await ingest((2, report)) == [None]

    again = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    assert again["scientificMetadata"]["temperature"]["value"] == 5
    block = await catalogue[ORIG_DATABLOCK_COLLECTION].find_one({"datasetId": pid})
    assert [f[REPORT_FIELD].split("\x1f")[-1] for f in block["dataFileList"]] == ["e1"]
    assert await catalogue[APPLIED_EVENT_COLLECTION].count_documents({}) == 0


async def test_a_report_carrying_metadata_for_an_unchanged_file_gets_a_marker(
    ingest, catalogue, acquisitions
) -> None:
    """It makes no record (the file's first stands), so its copy is recognised by a marker;
    looked up only because the record names another report."""
    pid = acquisitions.pid()
    await ingest((0, acquisitions.envelope(acquisitions.file_closed("a.h5", size=5), id="e1")))
    resent = acquisitions.envelope(
        acquisitions.file_closed("a.h5", size=5, metadata={"frame": {"value": 1, "unit": ""}}),
        id="e2",
    )
    await ingest((1, resent))
    newer = acquisitions.run_stopped(metadata={"frame": {"value": 2, "unit": ""}})
    await ingest((2, acquisitions.envelope(newer, id="e3")))

    assert await ingest((3, resent)) == [None]

    again = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    assert again["scientificMetadata"]["frame"]["value"] == 2
    [marker] = await catalogue[APPLIED_EVENT_COLLECTION].find().to_list()
    assert [i.split("\x1f")[-1] for i in marker["events"]] == ["e2"]


async def test_a_new_version_keeps_the_identities_of_the_one_before(
    store, catalogue, published, policy, acquisitions
) -> None:
    versioning = replace(policy, update_strategy="version")
    handler = AcquisitionHandler(
        store=store, events=published, policy=versioning, clock=lambda: NOW
    )
    batcher = BatchIngestor(handler, store, published)
    pid = acquisitions.pid()
    start = acquisitions.envelope(
        acquisitions.run_started(metadata={"energy": {"value": 10, "unit": "keV"}}), id="e1"
    )
    records = [
        start,
        acquisitions.envelope(acquisitions.file_closed("a.h5", size=5), id="e2"),
        acquisitions.envelope(
            acquisitions.run_stopped(metadata={"energy": {"value": 12, "unit": "keV"}}), id="e3"
        ),
    ]
    await batcher.handle_batch(
        [consumer_record(ACQUISITION_EVENTS, value, offset=n) for n, value in enumerate(records)]
    )
    changed = acquisitions.file_closed("a.h5", size=9, closed_at=acquisitions.at(3_600))
    await batcher.handle_batch(
        [consumer_record(ACQUISITION_EVENTS, acquisitions.envelope(changed), offset=3)]
    )
    version = await catalogue[DATASET_COLLECTION].find_one({"pid": f"{pid}/2"})
    assert [i.split("\x1f")[-1] for i in version[INGESTOR_APPLIED_EVENTS]] == ["e1", "e3"]

    await batcher.handle_batch([consumer_record(ACQUISITION_EVENTS, start, offset=4)])

    # merged again, the start's old energy would have made a third version
    assert await catalogue[DATASET_COLLECTION].count_documents({}) == 2


@pytest.mark.parametrize("kept_in", ["dataset", "file record"])
async def test_the_per_event_path_recognises_an_identity_a_document_keeps(
    kept_in, ingest, store, catalogue, acquisitions, policy, published
) -> None:
    """The back-fill command goes by markers; it still meets what a batch kept."""
    event = (
        acquisitions.run_started()
        if kept_in == "dataset"
        else acquisitions.file_closed("a.h5", metadata={"frame": {"value": 1, "unit": ""}})
    )
    value = acquisitions.envelope(event, id="e1")
    await ingest((0, value))
    handler = AcquisitionHandler(store=store, events=published, policy=policy, clock=lambda: NOW)
    published.stored.clear()

    await handler.handle_event(decode_acquisition_event(value))

    # recognised: its transaction (and the marker it began with) aborted, nothing applied
    assert await catalogue[APPLIED_EVENT_COLLECTION].count_documents({}) == 0
    assert [d.pipelineRevision for d in published.stored] == [1]


async def test_after_switching_back_to_identities_a_kept_identity_is_still_recognised(
    ingest, catalogue, acquisitions, mongo_uri, database_name, policy, published
) -> None:
    """Events applied by offsets have no marker; those whose copies matter are still known."""
    pid = acquisitions.pid()
    frame = {"frame": {"value": 1, "unit": ""}}
    report = acquisitions.envelope(acquisitions.file_closed("a.h5", metadata=frame), id="e1")
    start = acquisitions.envelope(acquisitions.run_started(metadata=frame), id="e2")
    await ingest((0, report), (1, start))
    newer = acquisitions.run_stopped(metadata={"frame": {"value": 2, "unit": ""}})
    await ingest((2, acquisitions.envelope(newer, id="e3")))

    async with MongoCatalogueStore(
        MongoSettings(uri=mongo_uri, database=database_name)
    ).connected() as by_identity:
        handler = AcquisitionHandler(
            store=by_identity, events=published, policy=policy, clock=lambda: NOW
        )
        await BatchIngestor(handler, by_identity, published).handle_batch(
            [
                consumer_record(ACQUISITION_EVENTS, report, offset=3),
                consumer_record(ACQUISITION_EVENTS, start, offset=4),
            ]
        )

    again = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    assert again["scientificMetadata"]["frame"]["value"] == 2


def test_a_dataset_keeps_the_latest_identities_only() -> None:
    kept: list[str] = []
    for n in range(KEPT_IDENTITIES_MAX + 3):
        kept = keeping(kept, f"s\x1f{n}")
    assert len(kept) == KEPT_IDENTITIES_MAX
    assert kept[0] == "s\x1f3" and kept[-1] == f"s\x1f{KEPT_IDENTITIES_MAX + 2}"


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
    offsets = Settings(batch_max_records=250)  # the default
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
