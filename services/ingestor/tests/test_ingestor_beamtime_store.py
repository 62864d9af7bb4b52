"""`beamtime.updated` over many datasets: several transactions, file lists untouched, redone
whole when interrupted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from scicat_ingestor import datablock_parts
from scicat_ingestor import store as store_module
from scicat_ingestor.batch import BatchIngestor
from scicat_ingestor.handlers import AcquisitionHandler
from scicat_ingestor.store import APPLIED_EVENT_COLLECTION, MongoCatalogueStore
from scicat_pipeline.testing.records import consumer_record
from scicat_schemas.documents import DATASET_COLLECTION, ORIG_DATABLOCK_COLLECTION
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


async def test_a_beamtime_of_many_datasets_is_completed_in_several_transactions(
    ingest, catalogue, acquisitions, monkeypatch
) -> None:
    monkeypatch.setattr(store_module, "BEAMTIME_DATASETS_PER_TRANSACTION", 3)
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
    ingest, store, catalogue, acquisitions, monkeypatch
) -> None:
    monkeypatch.setattr(store_module, "BEAMTIME_DATASETS_PER_TRANSACTION", 2)
    await ingest(
        *(
            (ACQUISITION_EVENTS, acquisitions.envelope(acquisitions.file_closed(run_id=run)))
            for run in (f"scan_{n:02d}" for n in range(RUNS))
        )
    )
    record_applied = MongoCatalogueStore._record_applied
    failures = iter([ConnectionError("MongoDB went away before the marker")])

    async def flaky(self, event, session) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        await record_applied(self, event, session)

    monkeypatch.setattr(MongoCatalogueStore, "_record_applied", flaky)
    update = (PROPOSALS_EVENTS, acquisitions.beamtime_updated())

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


async def test_a_redelivered_beamtime_update_publishes_its_datasets_again_without_their_files(
    store, policy, acquisitions, monkeypatch
) -> None:
    """Its first delivery may have crashed before publishing; the file lists play no part."""
    published = _Published()
    handler = AcquisitionHandler(store=store, events=published, policy=policy, clock=lambda: NOW)
    batcher = BatchIngestor(handler, store, published)

    async def ingest(*values: tuple[str, bytes]) -> list:
        records = [consumer_record(t, v, offset=n) for n, (t, v) in enumerate(values)]
        return await batcher.handle_batch(records)

    runs = [f"scan_{n:02d}" for n in range(RUNS)]
    await ingest(
        *(
            (ACQUISITION_EVENTS, acquisitions.envelope(acquisitions.file_closed(run_id=run)))
            for run in runs
        )
    )
    update = (PROPOSALS_EVENTS, acquisitions.beamtime_updated())
    await ingest(update)
    first = [(d.pid, d.pipelineRevision) for d in published.datasets[RUNS:]]
    published.datasets.clear()

    def no_file_lists(*_args, **_kwargs):
        raise AssertionError("a file list was read")

    monkeypatch.setattr(datablock_parts, "merged", no_file_lists)
    assert await ingest(update) == [None]

    again = [(d.pid, d.pipelineRevision) for d in published.datasets]
    assert sorted(again) == sorted(first)
    assert sorted(pid for pid, _ in again) == [f"test/{acquisitions.beamtime}/{r}" for r in runs]


class _Published:
    def __init__(self) -> None:
        self.datasets: list = []

    async def dataset_stored(self, dataset) -> None:
        self.datasets.append(dataset)

    async def datasets_stored(self, datasets) -> None:
        self.datasets.extend(datasets)
