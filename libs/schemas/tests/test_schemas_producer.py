"""The typed producer validates before sending, routes by type and makes resends duplicates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from scicat_pipeline.testing.topics import read_topic
from scicat_schemas.events import (
    ACQUISITION_EVENT,
    BeamtimeUpdated,
    BeamtimeUpdatedData,
    Checksum,
    DatasetDeleted,
    DatasetDeletedData,
)
from scicat_schemas.producer import EventProducer, UnroutableEvent, natural_event_id, route
from scicat_schemas.topics import ACQUISITION_EVENTS, CATALOGUE_DATASETS, PROPOSALS_EVENTS

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
RUN = {"run_id": "scan_001", "beamtime_id": "11012345", "instrument": "P08"}


async def test_a_run_goes_to_acquisition_events_keyed_by_run_in_order(kafka) -> None:
    async with EventProducer(kafka, source="/desy/p08/sardana") as producer:
        started = await producer.run_started(**RUN, started_at=T0)
        closed = await producer.file_closed(
            **RUN,
            path="/gpfs/raw/scan_001/a.cbf",
            size=1024,
            closed_at=T0,
            checksum=Checksum(algorithm="sha256", value="ab"),
        )
        stopped = await producer.run_stopped(**RUN, stopped_at=T0, status="abort", reason="beam")

    records = await read_topic(kafka, ACQUISITION_EVENTS, expected=3)
    events = [ACQUISITION_EVENT.validate_json(r.value) for r in records]
    assert [e.id for e in events] == [started.id, closed.id, stopped.id]
    assert {r.key for r in records} == {b"scan_001"}
    assert {r.partition for r in records} == {records[0].partition}
    assert {dict(r.headers)["content-type"] for r in records} == {b"application/cloudevents+json"}
    assert events[1].data.checksum.value == "ab"
    assert events[2].data.reason == "beam"
    assert {e.source for e in events} == {"/desy/p08/sardana"}


async def test_invalid_input_fails_before_anything_is_sent(kafka) -> None:
    async with EventProducer(kafka, source="/desy/p08/sardana") as producer:
        with pytest.raises(ValidationError, match="size"):
            await producer.file_closed(**RUN, path="/x", size=-1, closed_at=T0)
        with pytest.raises(ValidationError, match="closed_at"):
            await producer.file_closed(**RUN, path="/x", size=1, closed_at=datetime(2026, 3, 1, 10))
        await producer.run_started(**RUN, started_at=T0)

    [record] = await read_topic(kafka, ACQUISITION_EVENTS, expected=1)
    assert ACQUISITION_EVENT.validate_json(record.value).type == "run.started"


async def test_beamtime_goes_to_proposals_events_keyed_by_beamtime(kafka) -> None:
    data = BeamtimeUpdatedData(beamtime_id="11012345", proposal_id="2025", beamline="p08")

    async with EventProducer(kafka, source="/desy/door") as producer:
        event = await producer.beamtime_updated(data)

    [record] = await read_topic(kafka, PROPOSALS_EVENTS, expected=1)
    assert record.key == b"11012345"
    assert BeamtimeUpdated.model_validate_json(record.value).id == event.id


def test_same_payload_same_id_and_a_changed_file_a_new_id() -> None:
    from scicat_schemas.events import FileClosedData

    def closed(size: int) -> FileClosedData:
        return FileClosedData(**RUN, path="/x/a.cbf", size=size, closed_at=T0)

    assert natural_event_id("file.closed", closed(1)) == natural_event_id("file.closed", closed(1))
    assert natural_event_id("file.closed", closed(1)) != natural_event_id("file.closed", closed(2))
    assert natural_event_id("file.closed", closed(1)).startswith("file.closed:scan_001:")


def test_route_names_topic_and_key_and_refuses_unknown_types() -> None:
    deleted = DatasetDeleted(source="/s", data=DatasetDeletedData(pid="p/1", revision=3))

    assert route(deleted) == (CATALOGUE_DATASETS, "p/1")
    with pytest.raises(UnroutableEvent, match="no contract topic"):
        route(deleted.model_copy(update={"type": "dataset.renamed"}))


def test_a_producer_needs_a_source() -> None:
    with pytest.raises(ValueError, match="source"):
        EventProducer("localhost:9092", source="")
