"""The ingestor on the embedded stack: real Kafka (tansu), real MongoDB (SecantusDB)."""

from __future__ import annotations

from scicat_ingestor.catalogue_entry import REPORT_FIELD
from scicat_ingestor.store import APPLIED_EVENT_COLLECTION
from scicat_pipeline.testing import wait_for
from scicat_pipeline.testing.topics import read_topic
from scicat_schemas.documents import DATASET_COLLECTION, ORIG_DATABLOCK_COLLECTION
from scicat_schemas.events import DATASET_EVENT, Checksum
from scicat_schemas.runtime import dead_letter
from scicat_schemas.topics import ACQUISITION_EVENTS, CATALOGUE_DATASETS

DLQ = "ingestor.dlq"


def dataset_found(catalogue, pid: str, **expected):
    """A probe: the stored dataset once it has every `expected` field value."""

    async def probe():
        doc = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
        if doc is not None and all(doc.get(k) == v for k, v in expected.items()):
            return doc
        return None

    return probe


async def test_lone_file_closed_yields_a_dataset_a_datablock_and_an_event(
    ingestor, kafka_io, catalogue, acquisitions
) -> None:
    pid = acquisitions.pid()
    checksum = Checksum(algorithm="blake2b", value="ab12")

    await kafka_io.produce(
        acquisitions.envelope(acquisitions.file_closed("m.nxs", size=4096, checksum=checksum))
    )

    dataset = await wait_for(dataset_found(catalogue, pid), what="the dataset")
    block = await catalogue[ORIG_DATABLOCK_COLLECTION].find_one({"datasetId": pid})
    [record] = await kafka_io.read(CATALOGUE_DATASETS, 1)
    event = DATASET_EVENT.validate_json(record.value)
    assert (dataset["sourceFolder"], dataset["size"], dataset["numberOfFiles"]) == (
        acquisitions.folder,
        4096,
        1,
    )
    assert block["dataFileList"][0]["path"] == "m.nxs"
    assert (block["dataFileList"][0]["chk"], block["chkAlg"]) == ("ab12", "blake2b")
    assert record.key == pid.encode()
    assert dict(record.headers)["content-type"] == b"application/cloudevents+json"
    assert (event.type, event.id, event.subject) == ("dataset.stored", f"{pid}#1", pid)
    assert event.source == "/scicat-pipeline/ingestor"
    assert event.data.dataset.pid == pid
    assert event.data.dataset.numberOfFiles == 1
    ready = await ingestor.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["mongodb"] == "ok"


async def test_run_with_start_three_files_and_stop_is_one_complete_dataset(
    ingestor, kafka_io, catalogue, acquisitions
) -> None:
    pid = acquisitions.pid()

    await kafka_io.produce(
        acquisitions.envelope(acquisitions.run_started(metadata={"energy": 12.4})),
        acquisitions.envelope(acquisitions.file_closed("a.h5", size=10)),
        acquisitions.envelope(acquisitions.file_closed("b.h5", size=20)),
        acquisitions.envelope(acquisitions.file_closed("sub/c.h5", size=30)),
        acquisitions.envelope(acquisitions.run_stopped(status="fail", reason="detector error")),
    )

    dataset = await wait_for(
        dataset_found(catalogue, pid, datasetStatus="fail"), what="the stopped run"
    )
    block = await catalogue[ORIG_DATABLOCK_COLLECTION].find_one({"datasetId": pid})
    assert await catalogue[DATASET_COLLECTION].count_documents({}) == 1
    assert [f["path"] for f in block["dataFileList"]] == ["a.h5", "b.h5", "sub/c.h5"]
    assert (dataset["size"], dataset["numberOfFiles"], block["size"]) == (60, 3, 60)
    assert dataset["datasetStatusReason"] == "detector error"
    assert dataset["scientificMetadata"] == {"energy": 12.4}
    assert dataset["pipelineRevision"] == 5
    [final] = await read_topic(
        kafka_io.bootstrap,
        CATALOGUE_DATASETS,
        where=lambda r: DATASET_EVENT.validate_json(r.value).id == f"{pid}#5",
    )
    assert DATASET_EVENT.validate_json(final.value).data.dataset.numberOfFiles == 3


async def test_same_event_delivered_twice_changes_nothing_the_second_time(
    ingestor, kafka_io, catalogue, acquisitions
) -> None:
    """Produced twice (two offsets): recognised by the identity the file's record keeps (the
    report carries metadata, which merged again could replace a newer value), no marker."""
    pid = acquisitions.pid()
    frame = {"frame": {"value": 1, "unit": ""}}
    value = acquisitions.envelope(acquisitions.file_closed(metadata=frame), id="evt-42")
    later = acquisitions.envelope(acquisitions.file_closed(run_id="scan_0043"))

    await kafka_io.produce(value, value, later)

    await wait_for(
        dataset_found(catalogue, "test/11012345/scan_0043"),
        what="the event after the duplicate (same partition, so the duplicate was handled)",
    )
    published = await read_topic(
        kafka_io.bootstrap, CATALOGUE_DATASETS, where=lambda r: r.key == pid.encode()
    )
    dataset = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
    block = await catalogue[ORIG_DATABLOCK_COLLECTION].find_one({"datasetId": pid})
    assert len(block["dataFileList"]) == 1
    assert dataset["pipelineRevision"] == 1
    assert block["dataFileList"][0][REPORT_FIELD] == f"{acquisitions.producer}\x1fevt-42"
    assert await catalogue[APPLIED_EVENT_COLLECTION].count_documents({}) == 0
    assert {DATASET_EVENT.validate_json(r.value).id for r in published} == {f"{pid}#1"}


async def test_malformed_events_are_dead_lettered_and_the_next_event_is_processed(
    ingestor, kafka_io, catalogue, acquisitions
) -> None:
    without_size = acquisitions.envelope(acquisitions.file_closed("x.h5")).replace(
        b'"size":100,', b""
    )

    await kafka_io.produce(
        b"{not json", without_size, acquisitions.envelope(acquisitions.file_closed())
    )

    await wait_for(dataset_found(catalogue, acquisitions.pid()), what="the good event's dataset")
    letters = await kafka_io.read(DLQ, 2)
    headers = [{k: v.decode() for k, v in letter.headers} for letter in letters]
    assert [letter.value for letter in letters] == [b"{not json", without_size]
    assert [h[dead_letter.ERROR_TYPE] for h in headers] == ["invalid-json", "invalid-event"]
    assert "file.closed.data.size: Field required" in headers[1][dead_letter.REASON]
    assert {h[dead_letter.ORIGINAL_TOPIC] for h in headers} == {ACQUISITION_EVENTS}
    assert {h[dead_letter.SERVICE] for h in headers} == {"ingestor"}
    block = await catalogue[ORIG_DATABLOCK_COLLECTION].find_one({})
    assert [f["path"] for f in block["dataFileList"]] == ["a.h5"]
