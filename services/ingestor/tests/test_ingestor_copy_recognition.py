"""`DEDUPLICATION=offsets` recognises re-produced events as `identity` does.

Case by case (a start, a stop, file reports with metadata, versions, the per-event path, a
switch back to identities), then a differential test:

Two random runs (starts, file reports with and without metadata, stops) are delivered with copies
of earlier events produced again at later offsets, cut into random batches, and applied once
by identities (a marker per event) and once by offsets (fences, identities kept in the
documents), patching or versioning. The catalogues must be the same, and the same as without
the copies. Two reports of one file with different sizes never share a close time here: that
one case is documented as not recognised by offsets (the ingestor README).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from pymongo import AsyncMongoClient

from scicat_ingestor.applied_events import (
    APPLIED_EVENT_COLLECTION,
    KEPT_IDENTITIES_MAX,
    keeping,
)
from scicat_ingestor.batch import BatchIngestor
from scicat_ingestor.catalogue_entry import REPORT_FIELD
from scicat_ingestor.grouped_runs import RUN_COLLECTION
from scicat_ingestor.handlers import AcquisitionHandler, decode_acquisition_event
from scicat_ingestor.store import MongoCatalogueStore
from scicat_pipeline.testing.records import consumer_record
from scicat_schemas.documents import (
    DATASET_COLLECTION,
    INGESTOR_APPLIED_EVENTS,
    ORIG_DATABLOCK_COLLECTION,
)
from scicat_schemas.runtime.settings import MongoSettings
from scicat_schemas.topics import ACQUISITION_EVENTS

KEYS = ("energy", "temperature")
RUNS = ("scan_0042", "scan_0043")
"""Two runs, so a batch addresses several datasets (and a run may have no start)."""
INGESTED_AT = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


def _metadata(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=2))
    return {key: {"value": draw(st.integers(1, 3)), "unit": "keV"} for key in keys}


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[tuple[str, dict[str, Any]]], list[int], list[int]]:
    """(the original events as `(kind, fields)`, the delivery order as indices into them, where
    a repeated index is a copy produced again, the batch sizes)."""
    originals: list[tuple[str, dict[str, Any]]] = [("start", {"metadata": _metadata(draw)})]
    for _ in range(draw(st.integers(1, 9))):
        kind = draw(st.sampled_from(["file", "file", "stop", "start"]))
        run = draw(st.sampled_from(RUNS))
        if kind == "file":
            size = draw(st.integers(1, 3))
            fields: dict[str, Any] = {
                "name": draw(st.sampled_from(["a.h5", "b.h5"])),
                "size": size,
                "at": 10 + size,  # one close time per size: see the module docstring
                "metadata": _metadata(draw) if draw(st.booleans()) else {},
            }
        else:
            fields = {"metadata": _metadata(draw)}
        originals.append((kind, fields | {"run": run}))
    order = list(range(len(originals)))
    for _ in range(draw(st.integers(1, 4))):
        copied = draw(st.integers(0, len(originals) - 1))
        after = order.index(copied)
        order.insert(draw(st.integers(after + 1, len(order))), copied)
    sizes: list[int] = []
    while sum(sizes) < len(order):
        sizes.append(draw(st.integers(1, 5)))
    return originals, order, sizes


def _values(
    acquisitions: Any, originals: list[tuple[str, dict[str, Any]]], measurement: str | None = None
) -> list[bytes]:
    """The events' wire forms; `measurement`: every start names it (`MEASUREMENT_KEY`)."""
    values = []
    for n, (kind, fields) in enumerate(originals):
        metadata = fields["metadata"]
        if kind == "start" and measurement is not None:
            metadata = metadata | {"measurement": measurement}
        run = fields.get("run", RUNS[0])
        folder = f"/gpfs/current/raw/{run}"
        if kind == "start":
            data: Any = acquisitions.run_started(
                metadata=metadata, run_id=run, source_folder=folder
            )
        elif kind == "stop":
            data = acquisitions.run_stopped(metadata=metadata, run_id=run)
        else:
            data = acquisitions.file_closed(
                path=f"{folder}/{fields['name']}",
                size=fields["size"],
                closed_at=acquisitions.at(fields["at"]),
                metadata=metadata,
                run_id=run,
            )
        values.append(acquisitions.envelope(data, id=f"e{n}"))
    return values


async def _catalogue_after(
    uri: str,
    policy: Any,
    published: Any,
    values: list[bytes],
    order: list[int],
    sizes: list[int],
    fence_window: int | None,
) -> dict[str, Any]:
    """The stored datasets, file lists and grouped runs, the record of applied events aside,
    and each record's outcome (`None`: applied or recognised)."""
    database = f"copies_{uuid.uuid4().hex[:12]}"
    store = MongoCatalogueStore(
        MongoSettings(uri=uri, database=database), fence_window=fence_window
    )
    async with store.connected():
        handler = AcquisitionHandler(
            store=store, events=published, policy=policy, clock=lambda: INGESTED_AT
        )
        batcher = BatchIngestor(handler, store, published)
        records = [
            consumer_record(ACQUISITION_EVENTS, values[index], offset=offset, key=b"scan_0042")
            for offset, index in enumerate(order)
        ]
        outcomes: list[Any] = []
        start = 0
        for size in sizes:
            outcomes += await batcher.handle_batch(records[start : start + size])
            start += size
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        db = client[database]
        datasets = (
            await db[DATASET_COLLECTION]
            .find({}, {INGESTOR_APPLIED_EVENTS: False}, sort=[("_id", 1)])
            .to_list()
        )
        blocks = await db[ORIG_DATABLOCK_COLLECTION].find({}, sort=[("_id", 1)]).to_list()
        for block in blocks:
            for record in block["dataFileList"]:
                record.pop(REPORT_FIELD, None)
        runs = await db[RUN_COLLECTION].find({}, sort=[("_id", 1)]).to_list()
        await client.drop_database(database)
        refused = [type(o).__name__ for o in outcomes if o is not None]
        return {"datasets": datasets, "blocks": blocks, "runs": runs, "refused": refused}
    finally:
        await client.close()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(delivered=deliveries(), strategy=st.sampled_from(["patch", "version"]))
def test_offsets_recognise_every_copy_that_identities_recognise(
    delivered, strategy, mongo_uri, policy, published, acquisitions
) -> None:
    originals, order, sizes = delivered
    note(f"events {originals}, delivered {order}, batches {sizes}")
    policy = replace(policy, update_strategy=strategy)
    values = _values(acquisitions, originals)

    async def both() -> list[dict[str, list[dict[str, Any]]]]:
        once = list(range(len(originals)))
        return [
            await _catalogue_after(mongo_uri, policy, published, values, once, [len(once)], None),
            await _catalogue_after(mongo_uri, policy, published, values, order, sizes, None),
            await _catalogue_after(mongo_uri, policy, published, values, order, sizes, 100),
        ]

    without_copies, by_identities, by_offsets = asyncio.run(both())

    assert by_identities == without_copies
    assert by_offsets == by_identities


async def test_a_start_or_stop_produced_again_after_a_newer_change_does_not_undo_it(
    fenced_ingest, catalogue, acquisitions
) -> None:
    """Merged again, its old value would replace the newer one: it is recognised by the
    identity its dataset keeps, without a marker."""
    pid = acquisitions.pid()

    def energy(value: float) -> dict[str, Any]:
        return {"energy": {"value": value, "unit": "keV"}}

    start = acquisitions.envelope(acquisitions.run_started(metadata=energy(10)), id="e1")
    stop = acquisitions.envelope(acquisitions.run_stopped(metadata=energy(12)), id="e2")
    second_stop = acquisitions.envelope(acquisitions.run_stopped(metadata=energy(13)), id="e3")
    await fenced_ingest((0, start), (1, stop))
    await fenced_ingest((2, second_stop))
    newest = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})

    assert await fenced_ingest((3, start)) == [None]
    assert await fenced_ingest((4, stop), (5, start)) == [None, None]

    again = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    assert again["scientificMetadata"]["energy"]["value"] == 13
    assert again["pipelineRevision"] == newest["pipelineRevision"]
    assert await catalogue[APPLIED_EVENT_COLLECTION].count_documents({}) == 0


async def test_a_start_that_changed_nothing_is_kept_too(
    fenced_ingest, catalogue, acquisitions
) -> None:
    """A start repeating the facts under a new identity changes nothing; its identity is still
    kept (without a new revision), as a later copy of it would undo the stop's value."""
    pid = acquisitions.pid()
    metadata = {"energy": {"value": 10, "unit": "keV"}}
    await fenced_ingest(
        (0, acquisitions.envelope(acquisitions.run_started(metadata=metadata), id="e1"))
    )
    before = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    repeat = acquisitions.envelope(acquisitions.run_started(metadata=metadata), id="e2")

    assert await fenced_ingest((1, repeat)) == [None]

    kept = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    assert kept["pipelineRevision"] == before["pipelineRevision"]
    assert [i.split("\x1f")[-1] for i in kept[INGESTOR_APPLIED_EVENTS]] == ["e1", "e2"]
    newer = {"energy": {"value": 12, "unit": "keV"}}
    await fenced_ingest(
        (2, acquisitions.envelope(acquisitions.run_stopped(metadata=newer), id="e3"))
    )
    assert await fenced_ingest((3, repeat)) == [None]
    again = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    assert again["scientificMetadata"]["energy"]["value"] == 12


async def test_a_file_report_carrying_metadata_produced_again_does_not_undo_a_newer_value(
    fenced_ingest, catalogue, acquisitions
) -> None:
    """A long run may have thousands of such reports: the file record each makes names it."""
    pid = acquisitions.pid()
    report = acquisitions.envelope(
        acquisitions.file_closed("a.h5", metadata={"temperature": {"value": 4, "unit": "K"}}),
        id="e1",
    )
    await fenced_ingest((0, report))
    newer = acquisitions.run_stopped(metadata={"temperature": {"value": 5, "unit": "K"}})
    await fenced_ingest((1, acquisitions.envelope(newer, id="e2")))

    assert await fenced_ingest((2, report)) == [None]

    again = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    assert again["scientificMetadata"]["temperature"]["value"] == 5
    block = await catalogue[ORIG_DATABLOCK_COLLECTION].find_one({"datasetId": pid})
    assert [f[REPORT_FIELD].split("\x1f")[-1] for f in block["dataFileList"]] == ["e1"]
    assert await catalogue[APPLIED_EVENT_COLLECTION].count_documents({}) == 0


async def test_a_report_carrying_metadata_for_an_unchanged_file_gets_a_marker(
    fenced_ingest, catalogue, acquisitions
) -> None:
    """It makes no record (the file's first stands), so its copy is recognised by a marker;
    looked up only because the record names another report."""
    pid = acquisitions.pid()
    await fenced_ingest(
        (0, acquisitions.envelope(acquisitions.file_closed("a.h5", size=5), id="e1"))
    )
    resent = acquisitions.envelope(
        acquisitions.file_closed("a.h5", size=5, metadata={"frame": {"value": 1, "unit": ""}}),
        id="e2",
    )
    await fenced_ingest((1, resent))
    newer = acquisitions.run_stopped(metadata={"frame": {"value": 2, "unit": ""}})
    await fenced_ingest((2, acquisitions.envelope(newer, id="e3")))

    assert await fenced_ingest((3, resent)) == [None]

    again = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    assert again["scientificMetadata"]["frame"]["value"] == 2
    [marker] = await catalogue[APPLIED_EVENT_COLLECTION].find().to_list()
    assert [i.split("\x1f")[-1] for i in marker["events"]] == ["e2"]


async def test_a_new_version_keeps_the_identities_of_the_one_before(
    fenced_store, catalogue, published, policy, acquisitions
) -> None:
    versioning = replace(policy, update_strategy="version")
    handler = AcquisitionHandler(
        store=fenced_store, events=published, policy=versioning, clock=lambda: INGESTED_AT
    )
    batcher = BatchIngestor(handler, fenced_store, published)
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
    kept_in, fenced_ingest, fenced_store, catalogue, acquisitions, policy, published
) -> None:
    """The back-fill command goes by markers; it still meets what a batch kept."""
    event = (
        acquisitions.run_started()
        if kept_in == "dataset"
        else acquisitions.file_closed("a.h5", metadata={"frame": {"value": 1, "unit": ""}})
    )
    value = acquisitions.envelope(event, id="e1")
    await fenced_ingest((0, value))
    handler = AcquisitionHandler(
        store=fenced_store, events=published, policy=policy, clock=lambda: INGESTED_AT
    )
    published.stored.clear()

    await handler.handle_event(decode_acquisition_event(value))

    # recognised: its transaction (and the marker it began with) aborted, nothing applied
    assert await catalogue[APPLIED_EVENT_COLLECTION].count_documents({}) == 0
    assert [d.pipelineRevision for d in published.stored] == [1]


async def test_after_switching_back_to_identities_a_kept_identity_is_still_recognised(
    fenced_ingest, catalogue, acquisitions, mongo_uri, database_name, policy, published
) -> None:
    """Events applied by offsets have no marker; those whose copies matter are still known."""
    pid = acquisitions.pid()
    frame = {"frame": {"value": 1, "unit": ""}}
    report = acquisitions.envelope(acquisitions.file_closed("a.h5", metadata=frame), id="e1")
    start = acquisitions.envelope(acquisitions.run_started(metadata=frame), id="e2")
    await fenced_ingest((0, report), (1, start))
    newer = acquisitions.run_stopped(metadata={"frame": {"value": 2, "unit": ""}})
    await fenced_ingest((2, acquisitions.envelope(newer, id="e3")))

    async with MongoCatalogueStore(
        MongoSettings(uri=mongo_uri, database=database_name)
    ).connected() as by_identity:
        handler = AcquisitionHandler(
            store=by_identity, events=published, policy=policy, clock=lambda: INGESTED_AT
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


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(delivered=deliveries())
def test_grouped_runs_recognise_every_copy_as_identities_do(
    delivered, mongo_uri, policy, published, acquisitions
) -> None:
    """The same with measurement grouping: every start names measurement `m1`, so both runs
    (those that have a start) make one measurement dataset."""
    originals, order, sizes = delivered
    note(f"events {originals}, delivered {order}, batches {sizes}")
    policy = replace(policy, measurement_key="measurement")
    values = _values(acquisitions, originals, measurement="m1")

    async def both() -> list[dict[str, Any]]:
        once = list(range(len(originals)))
        return [
            await _catalogue_after(mongo_uri, policy, published, values, once, [len(once)], None),
            await _catalogue_after(mongo_uri, policy, published, values, order, sizes, None),
            await _catalogue_after(mongo_uri, policy, published, values, order, sizes, 100),
        ]

    without_copies, by_identities, by_offsets = asyncio.run(both())

    assert by_identities == without_copies
    assert by_offsets == by_identities
