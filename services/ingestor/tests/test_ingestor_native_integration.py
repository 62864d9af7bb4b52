"""Every producer's native format becomes the right datasets on the embedded stack.

Real Kafka (tansu) and MongoDB; the ingestor app runs in-process as in the other integration
tests. Messages are made by each producer's own encoder (see the adapter tests).
"""

from __future__ import annotations

import inspect
import json
import uuid
from datetime import UTC, datetime

import event_model
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from bluesky_kafka import Publisher
from streaming_data_types import serialise_wrdn

from scicat_ingestor.adapters.door import from_beamtime_metadata
from scicat_ingestor.app import create_app
from scicat_pipeline.embedded import create_topics
from scicat_pipeline.testing import wait_for
from scicat_pipeline.testing.topics import read_topic
from scicat_schemas.documents import DATASET_COLLECTION, ORIG_DATABLOCK_COLLECTION
from scicat_schemas.producer import EventProducer
from scicat_schemas.runtime import dead_letter

BLUESKY_TOPIC = "p08.bluesky.runengine.documents"
SERIALISE = inspect.signature(Publisher.__init__).parameters["serializer"].default


async def produce(bootstrap: str, topic: str, *messages: tuple[int, bytes]) -> None:
    """Send `(partition, value)` pairs in order, each acknowledged before the next."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition, value in messages:
            await producer.send_and_wait(topic, value, partition=partition)
    finally:
        await producer.stop()


def dataset_where(catalogue, pid: str, **expected):
    async def probe():
        doc = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
        if doc is not None and all(doc.get(k) == v for k, v in expected.items()):
            return doc
        return None

    return probe


async def files_of(catalogue, pid: str) -> list[tuple[str, int]]:
    block = await catalogue[ORIG_DATABLOCK_COLLECTION].find_one({"datasetId": pid})
    return [(f["path"], f["size"]) for f in block["dataFileList"]]


async def committed_offset(kafka: str, group: str, topic: str, partition: int) -> int | None:
    """The group's committed offset of one partition (None while nothing is committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, partition))
    finally:
        await consumer.stop()


def wrdn(job: str, path: str, **overrides) -> bytes:
    fields = {
        "service_id": "fw-1",
        "job_id": job,
        "error_encountered": False,
        "file_name": path,
        "metadata": json.dumps({"proposal_id": "999999", "instrument_name": "CODA"}),
    } | overrides
    return serialise_wrdn(**fields)


async def native_count(client: httpx.AsyncClient, producer: str, outcome: str) -> float:
    text = (await client.get("/metrics")).text
    line = f'scicat_ingestor_native_messages_total{{outcome="{outcome}",producer="{producer}"}}'
    for row in text.splitlines():
        if row.startswith(line):
            return float(row.split()[-1])
    return 0.0


async def test_wrdn_files_duplicates_failures_and_poison_on_the_filewriter_topic(
    ingestor, kafka, catalogue, tmp_path
) -> None:
    written = tmp_path / "coda_1.hdf"
    written.write_bytes(b"x" * 2048)
    good = wrdn("job-1", str(written))

    await produce(
        kafka,
        "filewriter.status",
        (0, b"\x00garbage that is no flatbuffer"),
        (0, good),
        (0, good),
        (0, wrdn("job-2", "/ess/none.hdf", error_encountered=True, message="disk full")),
        (0, wrdn("job-3", "/ess/x.hdf", metadata=json.dumps({"instrument_name": "CODA"}))),
        (0, wrdn("job-4", "/ess/data/coda_4.hdf")),
    )

    await wait_for(
        dataset_where(catalogue, "test/999999/job-4", datasetStatus="success"),
        what="the last job's dataset, closed",
    )
    assert await files_of(catalogue, "test/999999/job-1") == [("coda_1.hdf", 2048)]
    assert await files_of(catalogue, "test/999999/job-4") == [("coda_4.hdf", 0)]
    assert await catalogue[DATASET_COLLECTION].count_documents({}) == 2
    [letter] = await read_topic(kafka, "ingestor.dlq")
    headers = {k: v.decode() for k, v in letter.headers}
    assert headers[dead_letter.ERROR_TYPE] == "invalid-native-message"
    assert "names no proposal id" in headers[dead_letter.REASON]
    assert headers[dead_letter.ORIGINAL_TOPIC] == "filewriter.status"
    assert await native_count(ingestor, "wrdn", "not-this-kind") == 1
    assert await native_count(ingestor, "wrdn", "writer-failed") == 1
    assert await native_count(ingestor, "wrdn", "converted") == 3


async def test_bluesky_runs_interleaved_on_partitions_of_a_pattern_topic_become_datasets(
    ingestor, kafka, catalogue
) -> None:
    runs = [
        event_model.compose_run(metadata={"beamtime_id": "11012345", "scan_id": n}) for n in (1, 2)
    ]
    resources = [
        run.compose_resource(
            spec="AD_HDF5",
            root="/gpfs/current/raw",
            resource_path=f"scan_{n}/det.h5",
            resource_kwargs={},
        ).resource_doc
        for n, run in zip((1, 2), runs, strict=True)
    ]
    stops = [runs[0].compose_stop(), runs[1].compose_stop(exit_status="fail", reason="beam lost")]

    await produce(
        kafka,
        BLUESKY_TOPIC,
        (0, SERIALISE(("start", runs[0].start_doc))),
        (1, SERIALISE(("start", runs[1].start_doc))),
        (1, SERIALISE(("resource", resources[1]))),
        (0, SERIALISE(("resource", resources[0]))),
        (0, SERIALISE(("resource", resources[0]))),
        (1, SERIALISE(("stop", stops[1]))),
        (0, SERIALISE(("stop", stops[0]))),
    )

    first, second = (f"test/11012345/{run.start_doc['uid']}" for run in runs)
    await wait_for(dataset_where(catalogue, first, datasetStatus="success"), what="run 1 closed")
    failed = await wait_for(
        dataset_where(catalogue, second, datasetStatus="fail"), what="run 2 failed"
    )
    assert failed["instrumentIds"] == ["P08"]
    assert await files_of(catalogue, first) == [("det.h5", 0)]
    assert await files_of(catalogue, second) == [("det.h5", 0)]
    assert (await catalogue[DATASET_COLLECTION].find_one({"pid": first}))["numberOfFiles"] == 1


async def test_bluesky_run_survives_an_ingestor_restart_between_start_and_stop(
    settings, kafka, catalogue
) -> None:
    run = event_model.compose_run(metadata={"beamtime_id": "11012345"})
    pid = f"test/11012345/{run.start_doc['uid']}"
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await produce(kafka, BLUESKY_TOPIC, (2, SERIALISE(("start", run.start_doc))))
        await wait_for(dataset_where(catalogue, pid), what="the opened run")
        await wait_for(
            lambda: committed_offset(kafka, "ingestor-native", BLUESKY_TOPIC, 2),
            what="the start's offset committed by the pattern subscription",
        )

    restarted = create_app(settings)
    async with restarted.router.lifespan_context(restarted):
        await produce(kafka, BLUESKY_TOPIC, (2, SERIALISE(("stop", run.compose_stop()))))
        await wait_for(
            dataset_where(catalogue, pid, datasetStatus="success"), what="the run closed"
        )


async def test_a_bluesky_topic_created_after_start_up_is_read_from_its_beginning(
    settings, kafka, catalogue
) -> None:
    """A new beamline's RunEngine publishes to a topic the ingestor has never seen."""
    topic = f"p{uuid.uuid4().hex[:8]}.bluesky.runengine.documents"
    run = event_model.compose_run(metadata={"beamtime_id": "11012345"})
    pid = f"test/11012345/{run.start_doc['uid']}"
    quick = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"metadata_max_age_ms": 500})}
    )
    app = create_app(quick)
    async with app.router.lifespan_context(app):
        await create_topics(kafka, [topic])
        await produce(
            kafka,
            topic,
            (0, SERIALISE(("start", run.start_doc))),
            (0, SERIALISE(("stop", run.compose_stop()))),
        )

        await wait_for(
            dataset_where(catalogue, pid, datasetStatus="success"), what="the new topic's run"
        )


async def test_asapo_stream_becomes_a_dataset_closed_by_the_finish_flag(
    ingestor, kafka, catalogue
) -> None:
    def record(message_id: int, name: str, size: int) -> bytes:
        meta = {"_id": message_id, "size": size, "name": name, "timestamp": 1772359200 * 10**9}
        return json.dumps(
            {
                "beamtime": "11012345",
                "beamline": "p08",
                "stream": "scan_7",
                "core_path": "/asap3/p08/11012345",
                "message": {"source": "h:1", "buf_id": 0, "dataset_substream": 0, "meta": {}}
                | meta,
            }
        ).encode()

    await produce(
        kafka,
        "asapo.messages",
        (0, record(1, "raw/scan_7/a.cbf", 10)),
        (0, record(1, "raw/scan_7/a.cbf", 10)),
        (0, b'{"unrelated": true}'),
        (0, record(2, "raw/scan_7/b.cbf", 20)),
        (0, record(3, "asapo_finish_stream", 0)),
    )

    dataset = await wait_for(
        dataset_where(catalogue, "test/11012345/scan_7", datasetStatus="success"),
        what="the finished stream",
    )
    assert await files_of(catalogue, "test/11012345/scan_7") == [("a.cbf", 10), ("b.cbf", 20)]
    assert (dataset["size"], dataset["numberOfFiles"]) == (30, 2)
    assert await native_count(ingestor, "asapo", "not-this-kind") == 1


async def test_door_export_and_a_scripted_file_make_a_dataset_of_the_beamtime_and_proposal(
    ingestor, kafka, catalogue
) -> None:
    export = {
        "beamtimeId": "11012345",
        "proposalId": "20250123",
        "beamline": "p08",
        "title": "Liquid interfaces",
        "pi": {"email": "petra.pi@uni.example", "firstname": "Petra", "lastname": "Pi"},
        "users": {"doorDb": ["ppi"]},
    }
    async with EventProducer(kafka, source="/desy/p08/sardana") as producer:
        await producer.send(from_beamtime_metadata(export))
        await producer.send(from_beamtime_metadata(export))
        await producer.file_closed(
            run_id="scan_9",
            beamtime_id="11012345",
            instrument="P08",
            path="/gpfs/current/raw/scan_9/a.cbf",
            size=7,
            closed_at=datetime(2026, 3, 1, 10, tzinfo=UTC),
        )

    dataset = await wait_for(
        dataset_where(catalogue, "test/11012345/scan_9", proposalIds=["11012345", "20250123"]),
        what="the dataset completed with its beamtime and proposal",
    )
    assert dataset["numberOfFiles"] == 1
