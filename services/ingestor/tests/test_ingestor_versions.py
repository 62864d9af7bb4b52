"""`update_strategy`: a changed closed run patches its dataset, or becomes a new version."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from scicat_ingestor.app import create_app
from scicat_ingestor.domain import apply_event
from scicat_ingestor.store import AppliedEvent, MongoCatalogueStore
from scicat_pipeline.testing import wait_for
from scicat_pipeline.testing.topics import read_topic
from scicat_schemas.documents import DATASET_COLLECTION, ORIG_DATABLOCK_COLLECTION
from scicat_schemas.events import DATASET_EVENT
from scicat_schemas.runtime.settings import MongoSettings
from scicat_schemas.topics import CATALOGUE_DATASETS

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


@pytest.fixture
def versioning(policy):
    return replace(policy, update_strategy="version")


def closed_run(policy, acquisitions):
    entry = None
    for data in (acquisitions.file_closed("a.h5", size=10), acquisitions.run_stopped()):
        entry = apply_event(data, entry, policy=policy, now=NOW) or entry
    assert entry is not None
    return entry


def test_changed_file_of_a_closed_run_is_a_new_version(versioning, acquisitions) -> None:
    first = closed_run(versioning, acquisitions)

    second = apply_event(
        acquisitions.file_closed("a.h5", size=11), first, policy=versioning, now=NOW
    )

    assert second is not None
    assert second.dataset.pid == f"{first.pid}/2"
    assert (second.dataset.pipelineVersion, second.dataset.pipelineBasePid) == (2, first.pid)
    assert second.dataset.pipelineRevision == 1
    assert second.dataset.model_extra["relationships"] == [
        {"pid": first.pid, "relationship": "isNewVersionOf"}
    ]
    assert second.datablock is not None
    assert second.datablock.datasetId == second.dataset.pid
    assert second.datablock.id != first.datablock.id
    third = apply_event(
        acquisitions.file_closed("b.h5", size=1), second, policy=versioning, now=NOW
    )
    assert third is not None
    assert third.dataset.pid == f"{first.pid}/3"


def test_open_runs_and_status_changes_patch_even_when_versioning(versioning, acquisitions) -> None:
    opened = apply_event(acquisitions.run_started(), None, policy=versioning, now=NOW)
    with_file = apply_event(acquisitions.file_closed(), opened, policy=versioning, now=NOW)
    assert with_file is not None
    stopped = apply_event(acquisitions.run_stopped(), with_file, policy=versioning, now=NOW)
    assert stopped is not None
    failed = apply_event(
        acquisitions.run_stopped(status="fail"), stopped, policy=versioning, now=NOW
    )

    assert failed is not None
    assert {with_file.pid, stopped.pid, failed.pid} == {acquisitions.pid()}
    assert (
        apply_event(acquisitions.run_stopped(status="fail"), failed, policy=versioning, now=NOW)
        is None
    )


def test_patch_strategy_changes_the_dataset_in_place(policy, acquisitions) -> None:
    first = closed_run(policy, acquisitions)

    patched = apply_event(acquisitions.file_closed("a.h5", size=11), first, policy=policy, now=NOW)

    assert patched is not None
    assert (patched.pid, patched.dataset.pipelineVersion, patched.dataset.size) == (
        first.pid,
        1,
        11,
    )


@pytest.fixture
async def store(mongo_uri: str, database_name: str) -> AsyncIterator[MongoCatalogueStore]:
    async with MongoCatalogueStore(
        MongoSettings(uri=mongo_uri, database=database_name)
    ).connected() as opened:
        yield opened


async def test_versions_are_stored_side_by_side_and_events_reach_the_latest(
    store, catalogue, versioning, acquisitions
) -> None:
    async def apply(data, event_id):
        marker = AppliedEvent(
            identity=f"p\x1f{event_id}", type="t", pid=acquisitions.pid(), applied_at=NOW
        )
        return await store.apply(
            marker, lambda current, _: apply_event(data, current, policy=versioning, now=NOW)
        )

    await apply(acquisitions.file_closed("a.h5", size=10), "1")
    await apply(acquisitions.run_stopped(), "2")
    second = await apply(acquisitions.file_closed("a.h5", size=11), "3")
    again = await apply(acquisitions.file_closed("a.h5", size=11), "4")
    third = await apply(acquisitions.file_closed("a.h5", size=12), "5")

    assert second.dataset.pid == f"{acquisitions.pid()}/2"
    assert not again.changed
    assert third.dataset.pid == f"{acquisitions.pid()}/3"
    pids = sorted([d["pid"] async for d in catalogue[DATASET_COLLECTION].find()])
    assert pids == [acquisitions.pid(), f"{acquisitions.pid()}/2", f"{acquisitions.pid()}/3"]
    sizes = {b["datasetId"]: b["size"] async for b in catalogue[ORIG_DATABLOCK_COLLECTION].find()}
    assert sizes == {
        acquisitions.pid(): 10,
        f"{acquisitions.pid()}/2": 11,
        f"{acquisitions.pid()}/3": 12,
    }


async def test_changed_file_after_the_stop_is_published_as_a_new_version(
    settings, kafka, kafka_io, catalogue, acquisitions
) -> None:
    app = create_app(settings.model_copy(update={"update_strategy": "version"}))
    pid = acquisitions.pid()
    async with app.router.lifespan_context(app):
        await kafka_io.produce(
            acquisitions.envelope(acquisitions.file_closed("a.h5", size=10)),
            acquisitions.envelope(acquisitions.run_stopped()),
            acquisitions.envelope(acquisitions.file_closed("a.h5", size=11)),
        )
        second = await wait_for(
            lambda: catalogue[DATASET_COLLECTION].find_one({"pid": f"{pid}/2"}),
            what="the second version",
        )

    first = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    assert (first["size"], second["size"]) == (10, 11)
    assert second["pipelineBasePid"] == pid
    finals = {f"{pid}#2", f"{pid}/2#1"}
    records = await read_topic(
        kafka,
        CATALOGUE_DATASETS,
        expected=2,
        where=lambda record: DATASET_EVENT.validate_json(record.value).id in finals,
    )
    assert {DATASET_EVENT.validate_json(record.value).id for record in records} == finals
