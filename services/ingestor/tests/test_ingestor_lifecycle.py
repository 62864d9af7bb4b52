"""Runs, beamtimes, files and outages on the embedded stack: real Kafka (tansu), real MongoDB."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from datetime import UTC

import h5py
import httpx
import numpy as np
from aiokafka import AIOKafkaProducer

from scicat_ingestor.app import create_app
from scicat_pipeline.testing import wait_for
from scicat_pipeline.testing.topics import read_topic
from scicat_schemas.documents import (
    DATASET_COLLECTION,
    ORIG_DATABLOCK_COLLECTION,
    PROPOSAL_COLLECTION,
)
from scicat_schemas.events import (
    DATASET_EVENT,
    BeamtimeUpdated,
    BeamtimeUpdatedData,
    Person,
    encode,
)
from scicat_schemas.runtime.settings import MongoSettings
from scicat_schemas.topics import CATALOGUE_DATASETS, PROPOSALS_EVENTS


def stored(catalogue, pid: str, **expected):
    """A probe: the stored dataset once every `expected` field has its value."""

    async def probe():
        doc = await catalogue[DATASET_COLLECTION].find_one({"pid": pid})
        if doc is not None and all(doc.get(k) == v for k, v in expected.items()):
            return doc
        return None

    return probe


def beamtime_event(event_id: str = "bt-1", **overrides) -> bytes:
    data = {
        "beamtime_id": "11012345",
        "proposal_id": "20230042",
        "beamline": "p08",
        "title": "Thin films under strain",
        "principal_investigator": Person(email="pi@uni.example", lastname="Curie"),
        "leader": Person(email="leader@desy.example", lastname="Lovelace"),
        "metadata": {"proposalType": "I", "users": {"doorDb": ["alice"]}},
    } | overrides
    event = BeamtimeUpdated(id=event_id, source="/desy/door", data=BeamtimeUpdatedData(**data))
    return encode(event)


async def produce(bootstrap: str, topic: str, *values: bytes, key: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def running(settings):
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def test_late_beamtime_completes_every_dataset_of_its_beamtime_once(
    ingestor, kafka, kafka_io, catalogue, acquisitions
) -> None:
    other = acquisitions.file_closed("b.h5", run_id="scan_0043", path="/gpfs/current/raw/b.h5")
    await kafka_io.produce(
        acquisitions.envelope(acquisitions.file_closed("a.h5")), acquisitions.envelope(other)
    )
    first, second = acquisitions.pid(), "test/11012345/scan_0043"
    await wait_for(stored(catalogue, first), what="the first dataset")
    await wait_for(stored(catalogue, second), what="the second dataset")

    await produce(kafka, PROPOSALS_EVENTS, beamtime_event(), key=b"11012345")

    for pid in (first, second):
        done = await wait_for(
            stored(catalogue, pid, proposalIds=["11012345", "20230042"]), what=f"{pid} completed"
        )
        assert (done["pipelineRevision"], done["owner"], done["contactEmail"]) == (
            2,
            "Lovelace",
            "pi@uni.example",
        )
        assert done["description"] == "Thin films under strain"
    records = await read_topic(kafka, CATALOGUE_DATASETS, expected=4)
    ids = sorted(DATASET_EVENT.validate_json(r.value).id for r in records)
    assert ids == sorted([f"{first}#1", f"{first}#2", f"{second}#1", f"{second}#2"])
    beamtime = await catalogue[PROPOSAL_COLLECTION].find_one({"_id": "11012345"})
    door = await catalogue[PROPOSAL_COLLECTION].find_one({"_id": "20230042"})
    assert (beamtime["type"], beamtime["parentProposalId"]) == ("Beamtime", "20230042")
    assert beamtime["metadata"]["users"] == {"doorDb": ["alice"]}
    assert door["type"] == "DOOR Proposal"

    await produce(
        kafka, PROPOSALS_EVENTS, beamtime_event(), beamtime_event("bt-2"), key=b"11012345"
    )
    await wait_for(
        lambda: catalogue["PipelineAppliedEvent"].find_one({"_id": "/desy/door\x1fbt-2"}),
        what="the repeated beamtime applied",
    )
    again = await catalogue[DATASET_COLLECTION].find_one({"pid": first})
    assert again["pipelineRevision"] == 2

    await kafka_io.produce(acquisitions.envelope(acquisitions.file_closed("c.h5")))
    later = await wait_for(stored(catalogue, first, numberOfFiles=2), what="a later file")
    assert later["proposalIds"] == ["11012345", "20230042"]
    assert later["owner"] == "Lovelace"


async def test_restart_in_the_middle_of_a_run_loses_nothing(
    settings, kafka_io, catalogue, acquisitions
) -> None:
    pid = acquisitions.pid()
    async with running(settings):
        await kafka_io.produce(
            acquisitions.envelope(acquisitions.run_started()),
            acquisitions.envelope(acquisitions.file_closed("a.h5", size=10)),
        )
        await wait_for(stored(catalogue, pid, numberOfFiles=1), what="the open run")

    await kafka_io.produce(
        acquisitions.envelope(acquisitions.file_closed("b.h5", size=20)),
        acquisitions.envelope(acquisitions.run_stopped()),
    )
    async with running(settings):
        done = await wait_for(
            stored(catalogue, pid, datasetStatus="success"), what="the run completed"
        )

    assert (done["numberOfFiles"], done["size"]) == (2, 30)
    block = await catalogue[ORIG_DATABLOCK_COLLECTION].find_one({"datasetId": pid})
    assert [f["path"] for f in block["dataFileList"]] == ["a.h5", "b.h5"]


async def test_run_without_a_stop_is_closed_after_its_quiet_period(
    settings, kafka, kafka_io, catalogue, acquisitions
) -> None:
    quiet = settings.model_copy(
        update={"run_quiet_period_seconds": 0.3, "run_scan_interval_seconds": 0.1}
    )
    pid = acquisitions.pid()
    async with running(quiet):
        await kafka_io.produce(
            acquisitions.envelope(acquisitions.run_started()),
            acquisitions.envelope(acquisitions.file_closed("a.h5", closed_at=acquisitions.at(5))),
        )
        closed = await wait_for(stored(catalogue, pid, datasetStatus="timeout"), what="timeout")

    assert closed["endTime"].replace(tzinfo=UTC) == acquisitions.at(5)
    assert "no run.stopped" in closed["datasetStatusReason"]
    records = await read_topic(
        kafka,
        CATALOGUE_DATASETS,
        where=lambda r: (
            DATASET_EVENT.validate_json(r.value).data.dataset.datasetStatus == "timeout"
        ),
    )
    assert len(records) == 1


async def test_readable_nexus_file_gives_metadata_in_si_and_a_checksum(
    ingestor, kafka_io, catalogue, acquisitions, tmp_path
) -> None:
    path = tmp_path / "scan_0042.nxs"
    with h5py.File(path, "w") as nexus:
        energy = nexus.create_dataset("entry/instrument/monochromator/energy", data=np.float64(18))
        energy.attrs["units"] = "keV"
        nexus["entry/sample/name"] = "LaB6"
    size = path.stat().st_size
    event = acquisitions.file_closed(path=str(path), size=size, metadata={"operator": "ada"})

    await kafka_io.produce(acquisitions.envelope(event))

    dataset = await wait_for(stored(catalogue, acquisitions.pid()), what="the dataset")
    metadata = dataset["scientificMetadata"]
    assert metadata["energy"] == {
        "value": 18.0,
        "unit": "keV",
        "valueSI": 2.8839179412e-15,
        "unitSI": "kg*m**2/s**2",
    }
    assert (metadata["sample"]["name"], metadata["operator"]) == ("LaB6", "ada")
    assert metadata["facility"] == "PETRA III"
    assert {i["key"] for i in dataset["scientificMetadataIssues"]} >= {"wavelength", "title"}
    block = await catalogue[ORIG_DATABLOCK_COLLECTION].find_one({"datasetId": acquisitions.pid()})
    [record] = block["dataFileList"]
    assert (record["chkAlg"], record["chk"]) == (
        "blake2b",
        hashlib.blake2b(path.read_bytes()).hexdigest(),
    )


class MongoProxy:
    """A TCP relay to MongoDB that can be cut and restored: an outage on demand."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _relay(self, reader, writer) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)


async def _pipe(reader, writer) -> None:
    while chunk := await reader.read(65536):
        writer.write(chunk)
        await writer.drain()
    writer.close()


async def test_mongodb_outage_pauses_consumption_and_resumes_without_loss(
    settings, mongo_uri, kafka_io, catalogue, acquisitions
) -> None:
    port = int(mongo_uri.split(":")[2].split("/")[0])
    proxy = MongoProxy(port)
    await proxy.up()
    proxied = settings.model_copy(
        update={
            "mongo": MongoSettings(
                uri=f"mongodb://127.0.0.1:{proxy.port}/?directConnection=true",
                database=settings.mongo.database,
                timeout_ms=300,
            )
        }
    )
    pid = acquisitions.pid()
    async with running(proxied) as app:
        await kafka_io.produce(acquisitions.envelope(acquisitions.run_started()))
        await wait_for(stored(catalogue, pid), what="the run before the outage")
        await proxy.down()

        await kafka_io.produce(
            acquisitions.envelope(acquisitions.file_closed("a.h5")),
            acquisitions.envelope(acquisitions.run_stopped()),
        )

        async def retried() -> bool:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t"
            ) as http:
                text = (await http.get("/metrics")).text
            return any(
                line.startswith("scicat_transient_failures_total{") and not line.endswith(" 0.0")
                for line in text.splitlines()
            )

        await wait_for(retried, what="a transient failure while MongoDB is down")
        assert (await catalogue[DATASET_COLLECTION].find_one({"pid": pid}))["numberOfFiles"] == 0
        await proxy.up()

        done = await wait_for(
            stored(catalogue, pid, datasetStatus="success"), what="the run after the outage"
        )
    assert done["numberOfFiles"] == 1
    assert done["pipelineRevision"] == 3
