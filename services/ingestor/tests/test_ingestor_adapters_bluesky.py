"""bluesky documents composed with event-model and packed as bluesky-kafka's Publisher does."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime

import event_model
import numpy as np
import pytest
from bluesky_kafka import Publisher

from scicat_ingestor.adapters import BrokenMessage, NotThisKind
from scicat_ingestor.adapters.bluesky import decode_document, events_of, run_of_start

TOPIC = "p08.bluesky.runengine.documents"
RECEIVED = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
SERIALISE = inspect.signature(Publisher.__init__).parameters["serializer"].default
"""The Publisher's own encoder: msgpack with msgpack-numpy patched in."""


def wire(name: str, doc: dict) -> bytes:
    return SERIALISE((name, doc))


def run(**metadata):
    fields = {"beamtime_id": "11012345", "plan_name": "count", "scan_id": 7} | metadata
    return event_model.compose_run(metadata=fields, time=1772359200.5)


def convert(bundle, name: str, doc: dict):
    decoded_name, decoded = decode_document(wire(name, doc))
    context = run_of_start(bundle.start_doc, topic=TOPIC)
    return events_of(decoded_name, decoded, topic=TOPIC, run=context, received_at=RECEIVED)


def test_start_becomes_run_started_with_its_metadata_and_numpy_values_as_lists() -> None:
    bundle = run(sample={"name": "LaB6"}, positions=np.array([1.5, 2.5]))

    [event] = convert(bundle, "start", bundle.start_doc)

    assert event.type == "run.started"
    data = event.data
    assert (data.run_id, data.beamtime_id, data.instrument) == (
        bundle.start_doc["uid"],
        "11012345",
        "P08",
    )
    assert data.started_at == datetime(2026, 3, 1, 10, 0, 0, 500000, tzinfo=UTC)
    assert data.dataset_name == "count 7"
    assert data.metadata["sample"] == {"name": "LaB6"}
    assert data.metadata["positions"] == [1.5, 2.5]
    assert event.source == "/bluesky/p08"


def test_resource_and_stream_resource_become_files_of_the_run() -> None:
    bundle = run()
    resource = bundle.compose_resource(
        spec="AD_HDF5", root="/gpfs/current", resource_path="raw/scan_7/det.h5", resource_kwargs={}
    ).resource_doc
    stream = bundle.compose_stream_resource(
        mimetype="application/x-hdf5",
        uri="file://localhost/gpfs/current/raw/scan_7/panda%201.h5",
        data_key="panda",
        parameters={},
    ).stream_resource_doc

    [file_a] = convert(bundle, "resource", resource)
    [file_b] = convert(bundle, "stream_resource", stream)

    assert (file_a.data.path, file_b.data.path) == (
        "/gpfs/current/raw/scan_7/det.h5",
        "/gpfs/current/raw/scan_7/panda 1.h5",
    )
    assert {file_a.data.run_id, file_b.data.run_id} == {bundle.start_doc["uid"]}
    assert (file_a.data.size, file_a.data.closed_at) == (0, RECEIVED)
    assert file_a.id != file_b.id


def test_stop_becomes_run_stopped_with_exit_status_and_reason() -> None:
    bundle = run()
    stop = bundle.compose_stop(exit_status="abort", reason="user pressed ctrl-c", time=1772359260)

    [event] = convert(bundle, "stop", stop)

    assert event.type == "run.stopped"
    assert (event.data.status, event.data.reason) == ("abort", "user pressed ctrl-c")
    assert event.data.stopped_at == datetime(2026, 3, 1, 10, 1, tzinfo=UTC)


def test_the_same_document_twice_has_the_same_event_identity() -> None:
    bundle = run()
    stop = bundle.compose_stop()

    [first], [again] = convert(bundle, "stop", stop), convert(bundle, "stop", stop)

    assert (first.source, first.id) == (again.source, again.id)


def test_descriptors_and_events_yield_nothing() -> None:
    bundle = run()
    descriptor = bundle.compose_descriptor(
        name="primary", data_keys={"x": {"dtype": "number", "shape": [], "source": "sim"}}
    )
    event = descriptor.compose_event(data={"x": 1.0}, timestamps={"x": 1.0})

    assert convert(bundle, "descriptor", descriptor.descriptor_doc) == []
    assert convert(bundle, "event", event) == []


@pytest.mark.parametrize(
    ("metadata", "beamtime"),
    [
        ({"beamtime_id": None, "proposal_id": "11019999"}, "11019999"),
        ({"beamtime_id": None, "proposal": {"proposal_id": "314159"}}, "314159"),
        ({"beamtime_id": None, "data_session": "pass-314159"}, "314159"),
    ],
)
def test_beamtime_comes_from_the_facility_key_present(metadata, beamtime) -> None:
    fields = {k: v for k, v in metadata.items() if v is not None}
    bundle = event_model.compose_run(metadata=fields)

    assert run_of_start(bundle.start_doc, topic=TOPIC).beamtime_id == beamtime


def test_beamline_key_wins_over_the_topic_prefix() -> None:
    bundle = run(beamline_id="P21.2")

    assert run_of_start(bundle.start_doc, topic=TOPIC).instrument == "P21.2"


def test_start_without_a_beamtime_is_broken_and_says_which_key_to_set() -> None:
    bundle = event_model.compose_run(metadata={})

    with pytest.raises(BrokenMessage, match="beamtime_id"):
        convert(bundle, "start", bundle.start_doc)


def test_resource_of_an_unknown_run_is_broken() -> None:
    bundle, other = run(), run()
    resource = other.compose_resource(
        spec="AD_HDF5", root="/d", resource_path="x.h5", resource_kwargs={}
    ).resource_doc

    with pytest.raises(BrokenMessage, match="start document was never ingested"):
        convert(bundle, "resource", resource)


def test_non_file_uri_is_broken() -> None:
    bundle = run()
    stream = bundle.compose_stream_resource(
        mimetype="application/x-hdf5", uri="tiled://server/x", data_key="d", parameters={}
    ).stream_resource_doc

    with pytest.raises(BrokenMessage, match="file://"):
        convert(bundle, "stream_resource", stream)


@pytest.mark.parametrize("value", [b"", b"\xc1garbage", SERIALISE({"a": 1}), SERIALISE([1, 2])])
def test_values_that_are_no_document_pair_are_not_this_kind(value) -> None:
    with pytest.raises(NotThisKind):
        decode_document(value)
