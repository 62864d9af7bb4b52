"""The record of applied events: one marker per dataset per batch, the earlier layout, retention."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.errors import OperationFailure

from scicat_ingestor.applied_events import TTL_INDEX
from scicat_ingestor.batch_store import BatchItem
from scicat_ingestor.domain import apply_event
from scicat_ingestor.settings import Settings
from scicat_ingestor.store import (
    APPLIED_EVENT_COLLECTION,
    AppliedEvent,
    ConcurrentUpdate,
    MongoCatalogueStore,
    StoreOutcome,
)
from scicat_schemas.documents import DATASET_COLLECTION
from scicat_schemas.runtime.settings import MongoSettings

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


@pytest.fixture
def mongo_settings(mongo_uri: str, database_name: str) -> MongoSettings:
    return MongoSettings(uri=mongo_uri, database=database_name)


@pytest.fixture
async def store(mongo_settings: MongoSettings) -> AsyncIterator[MongoCatalogueStore]:
    async with MongoCatalogueStore(mongo_settings).connected() as opened:
        yield opened


def marker(event_id: str, pid: str) -> AppliedEvent:
    return AppliedEvent(identity=f"p\x1f{event_id}", type="file.closed", pid=pid, applied_at=NOW)


@pytest.fixture
def item(policy, acquisitions):
    """A batch item: event `event_id` closing file `name` (of `size` bytes) in run `run_id`."""

    def making(event_id: str, name: str = "a.h5", size: int = 100, run_id: str = "scan_0042"):
        data = acquisitions.file_closed(name, size=size, run_id=run_id)
        pid = acquisitions.pid() if run_id == "scan_0042" else f"test/11012345/{run_id}"
        return BatchItem(
            marker(event_id, pid),
            lambda current, _bt: apply_event(data, current, policy=policy, now=NOW),
        )

    return making


async def test_a_batch_records_one_marker_per_dataset_holding_its_events(
    store, catalogue, item
) -> None:
    await store.apply_many(
        [
            item("e1", "a.h5"),
            item("e2", "a.h5", run_id="scan_0043"),
            item("e3", "b.h5"),
            item("e4", "b.h5", run_id="scan_0043"),
        ]
    )

    markers = await catalogue[APPLIED_EVENT_COLLECTION].find().sort("_id", 1).to_list()
    assert [(m["_id"], m["events"], m["types"]) for m in markers] == [
        ("p\x1fe1", ["p\x1fe1", "p\x1fe3"], ["file.closed"]),
        ("p\x1fe2", ["p\x1fe2", "p\x1fe4"], ["file.closed"]),
    ]


async def test_event_recorded_in_a_batch_is_recognised_by_the_per_event_path(
    store, item, acquisitions, policy
) -> None:
    await store.apply_many([item("e1", "a.h5"), item("e2", "b.h5")])
    changed = acquisitions.file_closed("b.h5", size=999)

    again = await store.apply(
        AppliedEvent(
            identity="p\x1fe2", type="file.closed", pid=acquisitions.pid(), applied_at=NOW
        ),
        lambda current, _context: apply_event(changed, current, policy=policy, now=NOW),
    )

    assert again.already_applied and not again.changed
    assert (again.dataset.size, again.dataset.pipelineRevision) == (200, 2)


async def write_earlier_layout_marker(catalogue, event_id: str, pid: str) -> None:
    """A marker as the one-per-event layout wrote it, before this version."""
    await catalogue[APPLIED_EVENT_COLLECTION].insert_one(
        {"_id": f"p\x1f{event_id}", "type": "file.closed", "pid": pid, "appliedAt": NOW}
    )


async def test_event_recorded_in_the_earlier_one_marker_per_event_layout_is_not_applied_again(
    mongo_settings, store, catalogue, item, acquisitions
) -> None:
    await store.apply_many([item("e1", "a.h5")])
    await catalogue[APPLIED_EVENT_COLLECTION].delete_many({})
    await write_earlier_layout_marker(catalogue, "e1", acquisitions.pid())

    async with MongoCatalogueStore(mongo_settings).connected() as upgraded:
        in_batch = await upgraded.apply_many([item("e1", "a.h5", size=999), item("e2", "b.h5")])
        alone = await upgraded.apply(
            marker("e1", acquisitions.pid()),
            lambda current, _context: pytest.fail("a recorded event must not be decided again"),
        )

    first, second = in_batch.outcomes
    assert isinstance(first, StoreOutcome) and first.already_applied
    assert isinstance(second, StoreOutcome) and second.changed
    assert alone.already_applied
    stored = await catalogue[DATASET_COLLECTION].find_one({"pid": acquisitions.pid()})
    assert (stored["size"], stored["numberOfFiles"]) == (200, 2)


async def test_earlier_layout_marker_written_after_start_up_is_recognised_on_retry(
    store, catalogue, item, acquisitions
) -> None:
    """An old replica still running during a rolling upgrade: the collision makes the store
    look such markers up again, so the retry recognises the event instead of looping."""
    await store.apply_many([item("e0", "z.h5")])
    await write_earlier_layout_marker(catalogue, "e1", acquisitions.pid())

    with pytest.raises(ConcurrentUpdate):
        await store.apply_many([item("e1", "a.h5")])
    retried = await store.apply_many([item("e1", "a.h5"), item("e2", "b.h5")])

    assert [o.already_applied for o in retried.outcomes] == [True, False]


async def test_event_another_consumer_applies_meanwhile_aborts_the_batch(
    store, catalogue, item, mongo_settings, acquisitions
) -> None:
    """Another consumer applies e2 for real (its marker and its dataset) after this batch read
    the state: this batch's write of the same dataset fails, and the retry applies e2 once."""
    first, second = item("e1", "a.h5"), item("e2", "b.h5")

    async def other_consumer_applies_e2() -> None:
        async with MongoCatalogueStore(mongo_settings).connected() as other:
            await other.apply_many([second])

    def decide_while_another_consumer_applies_e2(current, beamtime):
        worker = threading.Thread(target=asyncio.run, args=(other_consumer_applies_e2(),))
        worker.start()
        worker.join()
        return first.decide(current, beamtime)

    with pytest.raises((ConcurrentUpdate, OperationFailure)):
        await store.apply_many(
            [BatchItem(first.event, decide_while_another_consumer_applies_e2), second]
        )

    stored = await catalogue[DATASET_COLLECTION].find_one({"pid": acquisitions.pid()})
    assert stored["numberOfFiles"] == 1
    retried = await store.apply_many([first, second])
    assert [o.already_applied for o in retried.outcomes] == [False, True]
    stored = await catalogue[DATASET_COLLECTION].find_one({"pid": acquisitions.pid()})
    assert (stored["numberOfFiles"], stored["size"]) == (2, 200)


async def test_the_unique_identity_index_of_earlier_versions_is_replaced(
    mongo_settings, catalogue
) -> None:
    """Uniqueness is left to the datasets' revision guard (see `applied_events`)."""
    markers = catalogue[APPLIED_EVENT_COLLECTION]
    await markers.create_index("events", unique=True, sparse=True)

    async with MongoCatalogueStore(mongo_settings).connected():
        indexes = await markers.index_information()

    [events_index] = [spec for spec in indexes.values() if spec["key"] == [("events", 1)]]
    assert not events_index.get("unique") and events_index.get("sparse")


async def test_marker_retention_is_a_ttl_index_that_follows_the_setting(
    mongo_settings, catalogue
) -> None:
    async def ttl_seconds(retention: timedelta | None) -> int | None:
        async with MongoCatalogueStore(mongo_settings, marker_retention=retention).connected():
            indexes = await catalogue[APPLIED_EVENT_COLLECTION].index_information()
        return indexes[TTL_INDEX]["expireAfterSeconds"] if TTL_INDEX in indexes else None

    configured = Settings(applied_event_retention_days=1).marker_retention()

    assert await ttl_seconds(configured) == 86_400
    assert await ttl_seconds(timedelta(days=2)) == 172_800
    assert await ttl_seconds(None) == 172_800
    assert await ttl_seconds(timedelta(0)) is None
