"""Measurement grouping on the batch path: the same catalogue as one event at a time.

Grouped runs once took the per-event path (about nine round trips and the measurement's whole
file list loaded per event: 14–19 events/s with 1,000–5,000-file measurements). In batches the
runs of a transaction's measurements are read once and recorded in memory; these tests hold
that to the per-event path, which records each event's run in MongoDB before the next event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from scicat_ingestor import grouped_runs
from scicat_ingestor.batch import BatchIngestor
from scicat_ingestor.grouped_runs import RUN_COLLECTION
from scicat_ingestor.handlers import AcquisitionHandler, decode_contract_record
from scicat_ingestor.measurements import MeasurementView, RunSample
from scicat_ingestor.store import MongoCatalogueStore
from scicat_ingestor.store_values import GroupedRun, UngroupedRun
from scicat_pipeline.testing.records import consumer_record
from scicat_schemas.documents import (
    DATASET_COLLECTION,
    INGESTOR_APPLIED_EVENTS,
    ORIG_DATABLOCK_COLLECTION,
)
from scicat_schemas.runtime.consumer import Rejected
from scicat_schemas.runtime.settings import MongoSettings
from scicat_schemas.topics import ACQUISITION_EVENTS

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


@pytest.fixture
def grouping(policy):
    return replace(policy, measurement_key="measurement")


@pytest.fixture
def opened(mongo_uri: str) -> Callable[[str], Any]:
    @asynccontextmanager
    async def opening(
        database: str, fence_window: int | None = None
    ) -> AsyncIterator[MongoCatalogueStore]:
        settings = MongoSettings(uri=mongo_uri, database=database)
        async with MongoCatalogueStore(settings, fence_window=fence_window).connected() as store:
            yield store

    return opening


async def _catalogue(mongo_uri: str, database: str) -> dict[str, list[dict[str, Any]]]:
    """Every dataset, file-list part and recorded run, as stored (the record of applied events
    aside: markers, and the identities a dataset keeps with `DEDUPLICATION=offsets`)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        db = client[database]
        return {
            name: await db[name]
            .find({}, projection={INGESTOR_APPLIED_EVENTS: False}, sort=[("_id", 1)])
            .to_list()
            for name in (DATASET_COLLECTION, ORIG_DATABLOCK_COLLECTION, RUN_COLLECTION)
        }
    finally:
        await client.close()


def _mixed_runs(acquisitions) -> list[bytes]:
    """Two runs of measurement m1 (the second adding keys), a repeated event, a refused file, a
    run without a start, a start without a measurement, a refused start naming m1 and a file of
    its run, a second start of a run naming another measurement, stops; interleaved."""

    def start(run: str, **metadata: Any) -> bytes:
        folder = f"/gpfs/current/raw/{run}"
        data = acquisitions.run_started(run_id=run, source_folder=folder, metadata=metadata)
        return acquisitions.envelope(data, id=f"start-{run}")

    def file(run: str, name: str, event_id: str, **fields: Any) -> bytes:
        data = acquisitions.file_closed(
            run_id=run, path=f"/gpfs/current/raw/{run}/{name}", size=len(name), **fields
        )
        return acquisitions.envelope(data, id=event_id)

    def stop(run: str, status: str = "success") -> bytes:
        data = acquisitions.run_stopped(run_id=run, status=status)
        return acquisitions.envelope(data, id=f"stop-{run}")

    energy = {"energy": {"value": 18.0, "unit": "keV"}}
    return [
        start("scan_1", measurement="m1", **energy),
        file("scan_1", "a.cbf", "f1", metadata=energy),
        file("solo", "lone.h5", "f2"),
        file("scan_1", "b.cbf", "f3", metadata=energy | {"frame": 2}),
        start("scan_2", measurement="m1", energy={"value": 20000.0, "unit": "eV"}),
        file("scan_1", "a.cbf", "f1", metadata=energy),  # redelivered
        file("scan_2", "c.cbf", "f4", metadata={"temperature": {"value": 295, "unit": "K"}}),
        file("scan_2", "d.cbf", "f5", metadata={"$where": 1}),  # refused: not storable
        stop("scan_1"),
        acquisitions.envelope(  # a second start naming another measurement: the run stays
            acquisitions.run_started(run_id="scan_1", metadata={"measurement": "m2"}),
            id="restart-scan_1",
        ),
        start("scan_3", sample="LaB6"),
        file("scan_3", "e.cbf", "f6"),
        file("scan_2", "c.cbf", "f7", metadata={"temperature": {"value": 296, "unit": "K"}}),
        start("scan_4", measurement="m1", **{"$where": 1}),  # refused: its run stays alone
        file("scan_4", "g.cbf", "f8"),
        stop("scan_2", "abort"),
    ]


@pytest.mark.parametrize(
    ("batch_size", "fence_window"), [(1, None), (4, None), (100, None), (4, 100)]
)
async def test_grouped_runs_in_batches_store_what_the_per_event_path_stores(
    batch_size, fence_window, opened, mongo_uri, database_name, grouping, acquisitions
) -> None:
    """Also with `DEDUPLICATION=offsets` (`fence_window`): the event repeated at a new offset
    is then applied again, as the repeated fact it is, and a redelivered batch changes nothing."""
    values = _mixed_runs(acquisitions)
    alone, batched = f"{database_name}_alone", f"{database_name}_batched"
    refused_alone = []
    async with opened(alone) as store:
        handler = AcquisitionHandler(
            store=store, events=_Dropped(), policy=grouping, clock=lambda: NOW
        )
        for n, value in enumerate(values):
            try:
                await handler.handle_event(decode_contract_record(_record(value, n)))
            except Rejected:
                refused_alone.append(n)
    refused_batched = []
    async with opened(batched, fence_window) as store:
        ingest = _batches(store, grouping)
        for first in range(0, len(values), batch_size):
            outcomes = await ingest(values[first : first + batch_size], first)
            refused_batched += [first + n for n, o in enumerate(outcomes) if o is not None]
        last = (len(values) - 1) // batch_size * batch_size
        redelivered = await ingest(values[last:], last)

    assert refused_batched == refused_alone == [7, 13]
    assert [last + n for n, o in enumerate(redelivered) if o is not None] == [
        n for n in refused_alone if n >= last
    ]
    expected = await _catalogue(mongo_uri, alone)
    assert await _catalogue(mongo_uri, batched) == expected
    pids = [d["pid"] for d in expected[DATASET_COLLECTION]]
    assert pids == [
        "test/11012345/m1",
        "test/11012345/scan_3",
        "test/11012345/scan_4",
        "test/11012345/solo",
    ]
    m1 = expected[DATASET_COLLECTION][0]
    assert m1["numberOfFiles"] == 3 and m1["datasetStatus"] == "abort"
    assert m1["scientificMetadata"]["runs"] == ["scan_1", "scan_2"]
    assert m1["scientificMetadata"]["temperature"]["max"] == 296


async def test_runs_started_within_a_batch_share_its_one_transaction(
    opened, database_name, grouping, acquisitions
) -> None:
    values = _mixed_runs(acquisitions)[:7]  # two starts naming m1, nothing refused
    async with opened(database_name) as store:
        transactions = []
        apply_many = store.apply_many

        async def counted(items):
            transactions.append(len(items))
            return await apply_many(items)

        store.apply_many = counted
        outcomes = await _batches(store, grouping)(values)

    assert outcomes == [None] * 7
    assert transactions == [7]


async def test_a_measurement_whose_runs_an_event_leaves_alone_keeps_its_view() -> None:
    """Files repeating their run's metadata do not recompute the measurement's statistics."""
    start = GroupedRun("b", "r1", "m", {"energy": 1.0}, started_at=NOW)
    file = replace(start, started_at=None)
    runs = grouped_runs.BatchRuns([])
    doc, view = runs.recording(start)
    runs.keep(doc, view)
    assert view.metadata["energy"]["count"] == 1

    again, same = runs.recording(file)
    assert same is view and again == doc
    _, other = runs.recording(replace(file, metadata={"energy": 1.0, "frame": 3}))
    assert other is not view and other.metadata["frame"]["count"] == 1
    assert runs.changed() == [doc]


def test_a_recording_the_domain_refused_leaves_the_statistics_as_they_were() -> None:
    """The measurement's runs are tallied as events record them; an event refused after its
    recording (nothing kept) must not count in the next event's view."""
    runs = grouped_runs.BatchRuns([])
    first = GroupedRun("b", "r1", "m", {"energy": 1.0}, started_at=NOW)
    second = GroupedRun("b", "r2", "m", {"energy": 3.0}, started_at=NOW.replace(minute=5))
    for run in (first, second):
        runs.keep(*runs.recording(run))
    runs.recording(replace(first, started_at=None, metadata={"frame": 5}))  # refused

    doc, view = runs.recording(replace(second, started_at=None, metadata={"gain": 2}))

    assert "frame" not in view.metadata
    assert view.metadata["energy"]["count"] == 2 and view.metadata["gain"]["count"] == 1
    runs.keep(doc, view)
    assert [d["runId"] for d in runs.changed()] == ["r1", "r2"]


@pytest.mark.parametrize("finished", [False, True])
def test_a_later_batch_tallies_the_runs_it_reads_not_what_a_failed_batch_left(finished) -> None:
    """A batch leaves its measurement's tally to the next one (no re-tallying every run), which
    uses it only if it holds exactly the runs read: here the middle batch's transaction failed
    (before or after its runs were written), so MongoDB still holds the first batch's runs."""
    first = grouped_runs.BatchRuns([])
    one = GroupedRun("b", "r1", "m", {"energy": 1.0}, started_at=NOW)
    first.keep(*first.recording(one))
    stored = first.changed()

    failed = grouped_runs.BatchRuns(stored)
    failed.keep(*failed.recording(replace(one, run_id="r2", metadata={"energy": 3.0})))
    if finished:
        failed.changed()  # the commit fails after this

    later = grouped_runs.BatchRuns(stored)
    _, view = later.recording(replace(one, run_id="r3", metadata={"energy": 5.0}))

    assert view.run_ids() == ["r1", "r3"]
    assert view.metadata["energy"]["count"] == 2 and view.metadata["energy"]["max"] == 5.0


def test_a_measurement_too_big_to_remember_is_tallied_again_not_refused(monkeypatch) -> None:
    monkeypatch.setattr(
        grouped_runs,
        "_RECENT_TALLIES",
        grouped_runs.LRUCache(maxsize=2, getsizeof=lambda tallied: len(tallied.held)),
    )
    runs = grouped_runs.BatchRuns([])
    for n in range(3):
        start = GroupedRun("b", f"r{n}", "m", {"energy": float(n)}, started_at=NOW)
        runs.keep(*runs.recording(start))

    assert len(runs.changed()) == 3
    assert not grouped_runs._RECENT_TALLIES


def test_a_tallied_view_reports_the_unit_issues_of_its_runs_in_start_order() -> None:
    runs = grouped_runs.BatchRuns([])
    late = GroupedRun("b", "r2", "m", {"speed": {"value": 1, "unit": "blorp"}}, started_at=NOW)
    early = replace(late, run_id="r1", started_at=NOW.replace(hour=1), metadata={"d": 1.0})
    for run in (late, early):
        runs.keep(*runs.recording(run))
    doc, view = runs.recording(replace(early, metadata={"t": {"value": 1, "unit": "zorkmid"}}))

    from_scratch = MeasurementView("m", view.runs)
    assert [issue.key for issue in view.unit_issues] == ["t", "speed"]
    assert view.unit_issues == from_scratch.unit_issues
    runs.keep(doc, view)
    runs.keep(*runs.recording(replace(late, metadata={"speed": {"value": 1, "unit": "m/s"}})))
    _, fixed = runs.recording(replace(early, metadata={"d": 2.0}))
    assert [issue.key for issue in fixed.unit_issues] == ["t"]


def test_an_event_of_a_run_its_measurement_never_recorded_is_ungrouped() -> None:
    """Its start was refused earlier in the transaction: the batch must be cut there."""
    with pytest.raises(UngroupedRun):
        grouped_runs.BatchRuns([]).recording(GroupedRun("b", "r1", "m", {}))


def test_a_views_statistics_are_computed_once() -> None:
    view = MeasurementView("m", [RunSample("r1", {"energy": 2.0})])

    assert view.metadata is view.metadata


class _Dropped:
    async def dataset_stored(self, dataset: Any) -> None:
        pass

    async def datasets_stored(self, datasets: Any) -> None:
        pass


def _batches(store, policy):
    handler = AcquisitionHandler(store=store, events=_Dropped(), policy=policy, clock=lambda: NOW)
    batcher = BatchIngestor(handler, store, _Dropped())

    async def ingesting(values: list[bytes], first: int = 0) -> list[Any]:
        """`values` as the records at offsets `first`, `first + 1`..."""
        return await batcher.handle_batch(
            [_record(value, first + n) for n, value in enumerate(values)]
        )

    return ingesting


def _record(value: bytes, offset: int):
    return consumer_record(ACQUISITION_EVENTS, value, offset=offset)
