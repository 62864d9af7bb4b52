"""The batch path on SecantusDB: many records, one transaction, per-record rejections."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from scicat_ingestor.batch import BatchIngestor
from scicat_ingestor.batch_store import BatchItem
from scicat_ingestor.domain import apply_event
from scicat_ingestor.file_reading import FileReader
from scicat_ingestor.handlers import AcquisitionHandler, decode_acquisition_event
from scicat_ingestor.settings import Settings
from scicat_ingestor.store import (
    APPLIED_EVENT_COLLECTION,
    AppliedEvent,
    ConcurrentUpdate,
    MongoCatalogueStore,
    StoreOutcome,
)
from scicat_ingestor.stored_documents import dataset_from
from scicat_pipeline.testing.records import consumer_record
from scicat_schemas.documents import DATASET_COLLECTION, ORIG_DATABLOCK_COLLECTION
from scicat_schemas.runtime.consumer import DEFERRED
from scicat_schemas.runtime.settings import MongoSettings
from scicat_schemas.topics import ACQUISITION_EVENTS, PROPOSALS_EVENTS

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(mongo_uri: str, database_name: str) -> AsyncIterator[MongoCatalogueStore]:
    async with MongoCatalogueStore(
        MongoSettings(uri=mongo_uri, database=database_name)
    ).connected() as opened:
        yield opened


@pytest.fixture
def ingest(store, published, policy):
    """Hand records to the batch handler as the consumer does; returns the outcomes."""
    handler = AcquisitionHandler(store=store, events=published, policy=policy, clock=lambda: NOW)
    batcher = BatchIngestor(handler, store, published)

    async def ingesting(*values: bytes | tuple[str, bytes] | None):
        records = [
            _record(*value, n)
            if isinstance(value, tuple)
            else _record(ACQUISITION_EVENTS, value, n)
            for n, value in enumerate(values)
        ]
        return await batcher.handle_batch(records)

    return ingesting


async def recorded(catalogue) -> list[list[str]]:
    """The event ids each marker records, markers in insertion order."""
    return [
        [identity.split("\x1f")[-1] for identity in marker["events"]]
        async for marker in catalogue[APPLIED_EVENT_COLLECTION].find().sort("appliedAt", 1)
    ]


def _record(topic: str, value: bytes | None, offset: int) -> ConsumerRecord[Any, Any]:
    return consumer_record(topic, value, offset=offset, key=b"scan_0042")


async def test_duplicates_in_a_batch_and_across_batches_apply_once(
    ingest, catalogue, published, acquisitions
) -> None:
    pid = acquisitions.pid()
    start = acquisitions.envelope(acquisitions.run_started(), id="e1")
    file_a = acquisitions.envelope(acquisitions.file_closed("a.h5"), id="e2")
    stop = acquisitions.envelope(acquisitions.run_stopped(), id="e3")

    assert await ingest(start, file_a, file_a) == [None, None, None]
    assert await ingest(file_a, start, stop) == [None, None, None]

    dataset = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    block = await catalogue[ORIG_DATABLOCK_COLLECTION].find_one({"datasetId": pid})
    assert (dataset["pipelineRevision"], dataset["datasetStatus"]) == (3, "success")
    assert [f["path"] for f in block["dataFileList"]] == ["a.h5"]
    assert await recorded(catalogue) == [["e1", "e2"], ["e3"]]
    assert published.ids() == [f"{pid}#2", f"{pid}#3"]


async def test_only_the_invalid_records_of_a_batch_are_rejected(
    ingest, catalogue, published, acquisitions
) -> None:
    pid = acquisitions.pid()

    outcomes = await ingest(
        acquisitions.envelope(acquisitions.run_started()),
        b"{not json",
        acquisitions.envelope(acquisitions.file_closed(path="relative/a.h5"), id="evt-9"),
        acquisitions.envelope(acquisitions.file_closed("b.h5")),
    )

    assert [None if o is None else o.error_type for o in outcomes] == [
        None,
        "invalid-json",
        "invalid-event",
        None,
    ]
    assert "'evt-9'" in outcomes[2].reason and "not absolute" in outcomes[2].reason
    block = await catalogue[ORIG_DATABLOCK_COLLECTION].find_one({"datasetId": pid})
    assert [f["path"] for f in block["dataFileList"]] == ["b.h5"]
    assert [len(events) for events in await recorded(catalogue)] == [2]
    assert published.ids() == [f"{pid}#2"]


async def test_a_file_refused_between_others_of_its_run_leaves_no_trace_in_the_list(
    ingest, catalogue, acquisitions
) -> None:
    """Later files of a run grow the transaction's own list in place; a refused one must not."""
    pid = acquisitions.pid()
    sizes = {"a.h5": 10, "b.h5": 2**63 - 5, "c.h5": 1, "d.h5": 2}  # b: the total overflows

    outcomes = await ingest(
        *(acquisitions.envelope(acquisitions.file_closed(n, size=z)) for n, z in sizes.items())
    )

    assert [None if o is None else o.error_type for o in outcomes] == [
        None,
        "invalid-event",
        None,
        None,
    ]
    block = await catalogue[ORIG_DATABLOCK_COLLECTION].find_one({"datasetId": pid})
    dataset = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    assert [f["path"] for f in block["dataFileList"]] == ["a.h5", "c.h5", "d.h5"]
    assert (dataset["size"], dataset["numberOfFiles"], block["size"]) == (13, 3, 13)


async def test_events_of_one_run_in_one_batch_each_see_the_previous_result(
    ingest, catalogue, published, acquisitions
) -> None:
    pid = acquisitions.pid()
    other = acquisitions.envelope(acquisitions.run_started(run_id="scan_0043"))

    outcomes = await ingest(
        acquisitions.envelope(acquisitions.run_started(metadata={"energy": 12.4})),
        acquisitions.envelope(acquisitions.file_closed("a.h5", size=10)),
        other,
        acquisitions.envelope(acquisitions.file_closed("b.h5", size=20)),
        acquisitions.envelope(acquisitions.run_stopped(status="fail", reason="detector error")),
    )

    assert outcomes == [None] * 5
    dataset = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    assert (dataset["size"], dataset["numberOfFiles"], dataset["pipelineRevision"]) == (30, 2, 4)
    assert (dataset["datasetStatus"], dataset["scientificMetadata"]) == ("fail", {"energy": 12.4})
    assert await catalogue[DATASET_COLLECTION].count_documents({}) == 2
    assert published.ids() == [f"{pid}#4", f"test/{acquisitions.beamtime}/scan_0043#1"]


async def test_field_set_by_another_service_before_a_batch_is_kept(
    ingest, catalogue, published, acquisitions
) -> None:
    await ingest(acquisitions.envelope(acquisitions.run_started()))
    await catalogue[DATASET_COLLECTION].update_one(
        {"pid": acquisitions.pid()},
        {"$set": {"isPublished": True}, "$inc": {"pipelineRevision": 1}},
    )

    await ingest(acquisitions.envelope(acquisitions.run_stopped()))

    stored = await catalogue[DATASET_COLLECTION].find_one({"pid": acquisitions.pid()})
    assert (stored["isPublished"], stored["pipelineRevision"]) == (True, 3)
    assert published.stored[-1].isPublished is True


async def test_publication_during_a_batch_fails_the_batch_and_the_retry_keeps_it(
    store, catalogue, mongo_uri, database_name, policy, acquisitions
) -> None:
    """The doi-minter commits between the batch's read and its write; `decide` is synchronous,
    so the other writer uses a synchronous client from inside it."""
    pid = acquisitions.pid()
    start, stop = acquisitions.run_started(), acquisitions.run_stopped()

    def item(data, event_id, decide=None) -> BatchItem:
        marker = AppliedEvent(identity=f"p\x1f{event_id}", type="t", pid=pid, applied_at=NOW)
        return BatchItem(
            marker,
            decide or (lambda current, _bt: apply_event(data, current, policy=policy, now=NOW)),
        )

    await store.apply_many([item(start, "e1")])

    def decide_while_the_doi_minter_publishes(current, _beamtime):
        with MongoClient(mongo_uri) as other:
            other[database_name][DATASET_COLLECTION].update_one(
                {"pid": pid}, {"$set": {"isPublished": True}, "$inc": {"pipelineRevision": 1}}
            )
        return apply_event(stop, current, policy=policy, now=NOW)

    with pytest.raises((ConcurrentUpdate, OperationFailure)) as failed:
        await store.apply_many([item(stop, "e2", decide_while_the_doi_minter_publishes)])

    assert isinstance(failed.value, ConcurrentUpdate) or failed.value.has_error_label(
        "TransientTransactionError"
    )
    assert await catalogue[APPLIED_EVENT_COLLECTION].count_documents({}) == 1
    retried = await store.apply_many([item(stop, "e2")])
    [outcome] = retried.outcomes
    assert isinstance(outcome, StoreOutcome) and outcome.changed
    stored = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    assert (stored["isPublished"], stored["datasetStatus"], stored["pipelineRevision"]) == (
        True,
        "success",
        3,
    )


async def test_beamtime_record_in_a_batch_applies_in_its_place(
    ingest, catalogue, acquisitions
) -> None:
    """Before it, a run's dataset is completed by it; after it, a new run reads it."""
    update = acquisitions.beamtime_updated()

    outcomes = await ingest(
        acquisitions.envelope(acquisitions.file_closed()),
        (PROPOSALS_EVENTS, update),
        acquisitions.envelope(acquisitions.file_closed(run_id="scan_0043")),
    )

    assert outcomes == [None, None, None]
    datasets = await catalogue[DATASET_COLLECTION].find({}).to_list()
    assert sorted(d["pid"] for d in datasets) == [
        acquisitions.pid(),
        f"test/{acquisitions.beamtime}/scan_0043",
    ]
    assert all("20230042" in d["proposalIds"] for d in datasets)


async def test_a_run_started_in_a_batch_takes_its_files_into_its_measurement(
    store, catalogue, published, acquisitions
) -> None:
    policy = Settings(pid_prefix="test", measurement_key="measurement").policy()
    handler = AcquisitionHandler(store=store, events=published, policy=policy, clock=lambda: NOW)
    start = acquisitions.run_started(metadata={"measurement": "m1"})

    outcomes = await BatchIngestor(handler, store, published).handle_batch(
        [
            _record(ACQUISITION_EVENTS, acquisitions.envelope(start), 0),
            _record(ACQUISITION_EVENTS, acquisitions.envelope(acquisitions.file_closed()), 1),
        ]
    )

    assert outcomes == [None, None]
    dataset = await catalogue[DATASET_COLLECTION].find_one({})
    assert (dataset["pid"], dataset["numberOfFiles"]) == (f"test/{acquisitions.beamtime}/m1", 1)


@pytest.mark.parametrize("before_the_file", ["stop", "start"])
async def test_a_file_after_a_stop_or_start_in_the_same_batch_is_stored(
    before_the_file, store, catalogue, published, policy, acquisitions
) -> None:
    """A late file closed after its run's stop (detectors write asynchronously). The stop keeps
    the stored file list as it is; the file must not grow that list in place, or the write,
    computed against the list as loaded, would leave it out while the dataset counts it."""
    handler = AcquisitionHandler(store=store, events=published, policy=policy, clock=lambda: NOW)
    batcher = BatchIngestor(handler, store, published)
    first = [acquisitions.run_started(), acquisitions.file_closed("a.h5", size=1)]
    boundary = (
        acquisitions.run_stopped()
        if before_the_file == "stop"
        else acquisitions.run_started(metadata={"energy": {"value": 1, "unit": "keV"}})
    )
    second = [boundary, acquisitions.file_closed("b.h5", size=2)]
    for offset, events in ((0, first), (2, second)):
        await batcher.handle_batch(
            [
                _record(ACQUISITION_EVENTS, acquisitions.envelope(event), offset + n)
                for n, event in enumerate(events)
            ]
        )

    dataset = await catalogue[DATASET_COLLECTION].find_one({})
    block = await catalogue[ORIG_DATABLOCK_COLLECTION].find_one({})
    assert [(f["path"], f["size"]) for f in block["dataFileList"]] == [("a.h5", 1), ("b.h5", 2)]
    assert (dataset["numberOfFiles"], dataset["size"], block["size"]) == (2, 3, 3)


async def test_versions_made_inside_one_batch_are_stored_side_by_side(
    store, catalogue, published, policy, acquisitions
) -> None:
    versioning = replace(policy, update_strategy="version")
    handler = AcquisitionHandler(
        store=store, events=published, policy=versioning, clock=lambda: NOW
    )
    sizes = (10, None, 11, 11, 12)
    events = [
        acquisitions.file_closed("a.h5", size=size) if size else acquisitions.run_stopped()
        for size in sizes
    ]
    pid = acquisitions.pid()

    outcomes = await BatchIngestor(handler, store, published).handle_batch(
        [_record(ACQUISITION_EVENTS, acquisitions.envelope(e), n) for n, e in enumerate(events)]
    )

    assert outcomes == [None] * 5
    blocks = {b["datasetId"]: b["size"] async for b in catalogue[ORIG_DATABLOCK_COLLECTION].find()}
    assert blocks == {pid: 10, f"{pid}/2": 11, f"{pid}/3": 12}
    assert published.ids() == [f"{pid}#2", f"{pid}/2#1", f"{pid}/3#1"]


async def test_a_record_of_several_events_is_rejected_when_one_is_and_the_rest_apply(
    store, catalogue, published, policy, acquisitions
) -> None:
    """Native records may give several events (a wrdn: the file and the run's stop)."""
    handler = AcquisitionHandler(store=store, events=published, policy=policy, clock=lambda: NOW)
    batcher = BatchIngestor(handler, store, published)

    def event(value: bytes):
        return decode_acquisition_event(value)

    outcomes: list = [None, None]
    await batcher.apply_in_order(
        [
            (0, event(acquisitions.envelope(acquisitions.file_closed("a.h5")))),
            (0, event(acquisitions.envelope(acquisitions.file_closed(path="relative/b.h5")))),
            (0, event(acquisitions.envelope(acquisitions.file_closed(path="relative/c.h5")))),
            (1, event(acquisitions.envelope(acquisitions.file_closed("d.h5")))),
        ],
        outcomes,
    )

    assert outcomes[0] is not None and outcomes[1] is None
    assert "relative/b.h5" in outcomes[0].reason
    block = await catalogue[ORIG_DATABLOCK_COLLECTION].find_one({"datasetId": acquisitions.pid()})
    assert [f["path"] for f in block["dataFileList"]] == ["a.h5", "d.h5"]


async def test_files_left_unread_by_the_time_budget_defer_the_rest_of_the_batch(
    store, catalogue, published, policy, acquisitions, tmp_path
) -> None:
    """Checksums of big files can outlast the consumer's poll interval: the batch stops reading
    once its budget is spent (the first file is always read) and hands the rest back."""
    names = ["a.h5", "b.h5", "c.h5"]
    for name in names:
        (tmp_path / name).write_bytes(name.encode() * 100)
    reader = FileReader(compute_checksums=True, mappings=[])
    handler = AcquisitionHandler(
        store=store, events=published, policy=policy, clock=lambda: NOW, files=reader
    )
    batcher = BatchIngestor(handler, store, published, time_budget=0.0)
    values = [
        acquisitions.envelope(acquisitions.run_started(source_folder=str(tmp_path))),
        *(
            acquisitions.envelope(
                acquisitions.file_closed(path=str(tmp_path / name), size=len(name) * 100)
            )
            for name in names
        ),
    ]
    records = [_record(ACQUISITION_EVENTS, value, n) for n, value in enumerate(values)]

    first = await batcher.handle_batch(records)
    second = await batcher.handle_batch(records[2:])
    third = await batcher.handle_batch(records[3:])

    assert first == [None, None, DEFERRED, DEFERRED]
    assert second == [None, DEFERRED]
    assert third == [None]
    block = await catalogue[ORIG_DATABLOCK_COLLECTION].find_one({"datasetId": acquisitions.pid()})
    assert [(f["path"], f["chkAlg"]) for f in block["dataFileList"]] == [
        (name, "blake2b") for name in names
    ]


async def test_what_a_batch_publishes_and_remembers_is_what_it_stored(
    ingest, store, catalogue, published, acquisitions
) -> None:
    """Nothing is read back after the writes: the datasets the batch computed are published and
    remembered as committed, so they must equal the stored documents to the last field (times
    at the millisecond, units in SI) — else the next batch would reload every file list."""
    precise = datetime(2024, 5, 14, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    metadata = {"energy": {"value": 12.4, "unit": "keV"}, "sample": {"name": "LaB6"}}
    await ingest(
        acquisitions.envelope(acquisitions.run_started(started_at=precise, metadata=metadata)),
        acquisitions.envelope(
            acquisitions.file_closed("a.h5", closed_at=precise + timedelta(microseconds=1))
        ),
        acquisitions.envelope(acquisitions.file_closed("b.h5", metadata={"frame": 2})),
    )
    await ingest(acquisitions.envelope(acquisitions.run_stopped(stopped_at=precise)))

    stored = dataset_from(await catalogue[DATASET_COLLECTION].find_one({"pid": acquisitions.pid()}))
    assert published.stored[-1] == stored
    assert stored.endTime == datetime(2024, 5, 14, 10, 0, 0, 123000, tzinfo=UTC)
    assert store._recent.file_list_of(stored) is not None
