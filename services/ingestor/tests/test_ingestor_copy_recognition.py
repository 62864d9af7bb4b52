"""`DEDUPLICATION=offsets` recognises re-produced events as `identity` does: a differential test.

Two random runs (starts, file reports with and without metadata, stops) are delivered with copies
of earlier events produced again at later offsets, cut into random batches, and applied once
by identities (a marker per event) and once by offsets (fences, identities kept in the
documents), patching or versioning. The catalogues must be the same, and the same as without
the copies. Two reports of
one file with different sizes never share a close time here: that one case is documented as
not recognised by offsets (the ingestor README).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from pymongo import AsyncMongoClient

from scicat_ingestor.batch import BatchIngestor
from scicat_ingestor.catalogue_entry import REPORT_FIELD
from scicat_ingestor.handlers import AcquisitionHandler
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


def _values(acquisitions: Any, originals: list[tuple[str, dict[str, Any]]]) -> list[bytes]:
    values = []
    for n, (kind, fields) in enumerate(originals):
        metadata = fields["metadata"]
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
) -> dict[str, list[dict[str, Any]]]:
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
        start = 0
        for size in sizes:
            outcomes = await batcher.handle_batch(records[start : start + size])
            assert all(outcome is None for outcome in outcomes)
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
        await client.drop_database(database)
        return {"datasets": datasets, "blocks": blocks}
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
