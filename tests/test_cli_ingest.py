"""`scicat-pipeline ingest`: back-filling files through the ingestor's own code, resumably."""

from __future__ import annotations

import asyncio
import os

import pytest
from pymongo import AsyncMongoClient
from typer.testing import CliRunner

from scicat_pipeline.cli import app
from scicat_pipeline.testing.topics import read_topic
from scicat_schemas.documents import DATASET_COLLECTION, ORIG_DATABLOCK_COLLECTION
from scicat_schemas.events import DATASET_EVENT
from scicat_schemas.topics import CATALOGUE_DATASETS

BEAMTIME = ["--beamtime", "11012345", "--instrument", "P08"]


@pytest.fixture
def beamtime_tree(tmp_path):
    """raw/scan_001 (2 files), raw/scan_002 (1 file), raw/notes.txt, and a hidden file."""
    raw = tmp_path / "11012345" / "raw"
    for name, size in [("scan_001/a.cbf", 100), ("scan_001/b.cbf", 200), ("scan_002/c.cbf", 50)]:
        path = raw / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\1" * size)
        os.utime(path, (1772359200, 1772359200))
    (raw / "notes.txt").write_text("beam was unstable")
    (raw / "scan_001" / ".lock").write_text("")
    return raw


@pytest.fixture
async def catalogue(mongo_uri, database_name):
    client = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        yield client[database_name]
    finally:
        await client.close()


async def ingest(mongo_uri: str, database: str, *args: str, **env: str):
    return await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["ingest", *args, *BEAMTIME, "--mongodb", mongo_uri, "--database", database],
        env={"INGESTOR_PID_PREFIX": "test", "COLUMNS": "250", **env},
    )


async def datasets(catalogue) -> dict[str, dict]:
    return {d["pid"]: d async for d in catalogue[DATASET_COLLECTION].find({})}


async def test_a_beamtime_folder_becomes_one_closed_dataset_per_run_directory(
    beamtime_tree, catalogue, mongo_uri, database_name
) -> None:
    result = await ingest(mongo_uri, database_name, str(beamtime_tree))

    assert result.exit_code == 0, result.output
    stored = await datasets(catalogue)
    assert set(stored) == {"test/11012345/scan_001", "test/11012345/scan_002", "test/11012345/raw"}
    scan = stored["test/11012345/scan_001"]
    assert (scan["numberOfFiles"], scan["size"], scan["datasetStatus"]) == (2, 300, "success")
    assert scan["sourceFolder"] == (beamtime_tree / "scan_001").as_posix()
    block = await catalogue[ORIG_DATABLOCK_COLLECTION].find_one({"datasetId": scan["pid"]})
    assert [f["path"] for f in block["dataFileList"]] == ["a.cbf", "b.cbf"]
    assert stored["test/11012345/raw"]["numberOfFiles"] == 1


async def test_files_go_in_batches_each_one_transaction_with_their_checksums(
    beamtime_tree, catalogue, mongo_uri, database_name
) -> None:
    """Events in transactions of INGESTOR_BATCH_MAX_RECORDS (here 2: a run's start and files
    land in different ones), files read in parallel and checksummed."""
    result = await ingest(
        mongo_uri, database_name, str(beamtime_tree), INGESTOR_BATCH_MAX_RECORDS="2"
    )

    assert result.exit_code == 0, result.output
    stored = await datasets(catalogue)
    scan = stored["test/11012345/scan_001"]
    assert (scan["numberOfFiles"], scan["size"], scan["datasetStatus"]) == (2, 300, "success")
    block = await catalogue[ORIG_DATABLOCK_COLLECTION].find_one({"datasetId": scan["pid"]})
    assert [(f["path"], f["chkAlg"]) for f in block["dataFileList"]] == [
        ("a.cbf", "blake2b"),
        ("b.cbf", "blake2b"),
    ]
    assert len({f["chk"] for f in block["dataFileList"]}) == 2


async def test_running_again_changes_nothing_and_a_new_file_is_added(
    beamtime_tree, catalogue, mongo_uri, database_name
) -> None:
    await ingest(mongo_uri, database_name, str(beamtime_tree))
    before = await datasets(catalogue)

    again = await ingest(mongo_uri, database_name, str(beamtime_tree))
    unchanged = await datasets(catalogue)
    (beamtime_tree / "scan_002" / "d.cbf").write_bytes(b"\2" * 25)
    resumed = await ingest(mongo_uri, database_name, str(beamtime_tree / "scan_002"))
    after = await datasets(catalogue)

    assert again.exit_code == resumed.exit_code == 0
    revisions = {pid: d["pipelineRevision"] for pid, d in before.items()}
    assert {pid: d["pipelineRevision"] for pid, d in unchanged.items()} == revisions
    scan_2 = after["test/11012345/scan_002"]
    assert (scan_2["numberOfFiles"], scan_2["size"]) == (2, 75)


async def test_dry_run_lists_the_datasets_and_writes_nothing(
    beamtime_tree, catalogue, mongo_uri, database_name
) -> None:
    result = await ingest(mongo_uri, database_name, str(beamtime_tree), "--dry-run")

    assert result.exit_code == 0, result.output
    assert "3 run(s), 4 file(s)" in result.output
    assert "test/11012345/scan_001" in result.output
    assert await catalogue[DATASET_COLLECTION].count_documents({}) == 0


async def test_missing_path_exits_2(mongo_uri, database_name) -> None:
    result = await ingest(mongo_uri, database_name, "/no/such/beamtime")

    assert result.exit_code == 2
    assert "no such file or directory" in result.output


async def test_with_kafka_each_dataset_is_published_as_the_service_does(
    beamtime_tree, mongo_uri, database_name, kafka
) -> None:
    result = await ingest(
        mongo_uri, database_name, str(beamtime_tree / "scan_001"), "--kafka", kafka
    )

    assert result.exit_code == 0, result.output
    [closed] = await read_topic(
        kafka,
        CATALOGUE_DATASETS,
        where=lambda r: (
            DATASET_EVENT.validate_json(r.value).data.dataset.datasetStatus == "success"
        ),
    )
    event = DATASET_EVENT.validate_json(closed.value)
    assert (closed.key, event.data.dataset.numberOfFiles) == (b"test/11012345/scan_001", 2)


async def test_unusable_mapping_directory_exits_2_before_writing(
    beamtime_tree, mongo_uri, database_name
) -> None:
    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["ingest", str(beamtime_tree), *BEAMTIME, "--mongodb", mongo_uri],
        env={"INGESTOR_METADATA_MAPPINGS_DIR": "/no/such/mappings", "COLUMNS": "250"},
    )

    assert result.exit_code == 2
    assert "configuration" in result.output and "/no/such/mappings" in result.output
