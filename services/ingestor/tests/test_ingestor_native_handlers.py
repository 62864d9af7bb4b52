"""The native-topic batch handler without a broker: routing, order, outcomes, sizes, run context."""

from __future__ import annotations

import inspect
import json
import re

import event_model
import pytest
from aiokafka import ConsumerRecord
from bluesky_kafka import Publisher
from prometheus_client import CollectorRegistry
from streaming_data_types import serialise_wrdn

from scicat_ingestor.adapters import bluesky as bluesky_adapter
from scicat_ingestor.native import MemoryBlueskyRuns, NativeHandlers, NativeMetrics, NativeTopics
from scicat_ingestor.store_values import Delivery
from scicat_pipeline.testing.records import consumer_record
from scicat_schemas.runtime.consumer import Rejected

SERIALISE = inspect.signature(Publisher.__init__).parameters["serializer"].default
BLUESKY = "p21.bluesky.runengine.documents"


def record(topic: str, value: bytes, offset: int = 0) -> ConsumerRecord:
    return consumer_record(topic, value, offset=offset, key=None, timestamp=1772359200000)


@pytest.fixture
def applied() -> list:
    """`(record position, event)` as handed to the applier, batch after batch."""
    return []


@pytest.fixture
def refuse() -> set[str]:
    """Paths whose `file.closed` the applier rejects, as the store rejects an invalid event."""
    return set()


@pytest.fixture
def native(applied, refuse) -> NativeHandlers:
    async def apply(entries, outcomes, deliveries=None) -> None:
        applied.extend(entries)
        for position, event in entries:
            if getattr(event.data, "path", None) in refuse:
                outcomes[position] = outcomes[position] or Rejected(f"refused {event.data.path}")

    return NativeHandlers(
        apply=apply, runs=MemoryBlueskyRuns(), metrics=NativeMetrics(CollectorRegistry())
    )


@pytest.fixture
def handle(native):
    return native.batch_handler(NativeTopics())


def count(native: NativeHandlers, producer: str, outcome: str) -> float:
    value = native.metrics.registry.get_sample_value(
        "scicat_ingestor_native_messages_total", {"producer": producer, "outcome": outcome}
    )
    return value or 0.0


def test_one_pattern_matches_every_enabled_native_topic_and_nothing_else() -> None:
    pattern = re.compile(NativeTopics().pattern())

    assert all(pattern.match(t) for t in ("filewriter.status", "asapo.messages", BLUESKY))
    assert not pattern.match("acquisition.events")
    assert not pattern.match("filewriter.status.old")
    only_asapo = NativeTopics(filewriter="", bluesky_pattern="")
    assert re.compile(only_asapo.pattern()).match("asapo.messages")
    assert not re.compile(only_asapo.pattern()).match(BLUESKY)
    assert NativeTopics(filewriter="", bluesky_pattern="", asapo="").pattern() is None


def wrdn_of(path: str, job: str = "job") -> bytes:
    metadata = json.dumps({"proposal_id": "1", "instrument_name": "CODA"})
    return serialise_wrdn("fw", job, False, path, metadata)


def asapo_of(name: str, message_id: int = 1) -> bytes:
    message = {"_id": message_id, "name": name, "size": 10, "timestamp": 1772359200000000000}
    return json.dumps(
        {
            "beamtime": "11012345",
            "beamline": "p08",
            "core_path": "/asap3/petra3/gpfs/p08/2026/data/11012345",
            "message": message,
        }
    ).encode()


async def test_wrdn_file_gets_its_size_from_the_file_when_readable(
    native, handle, applied, tmp_path
):
    data = tmp_path / "run.hdf"
    data.write_bytes(b"\0" * 4096)

    outcomes = await handle([record("filewriter.status", wrdn_of(str(data)))])

    assert outcomes == [None]
    assert [position for position, _ in applied] == [0, 0]
    [(_, event), (_, stopped)] = applied
    assert (event.data.path, event.data.size) == (str(data), 4096)
    assert stopped.type == "run.stopped"
    assert count(native, "wrdn", "converted") == 1


async def test_a_batch_of_every_producer_is_applied_together_in_record_order(handle, applied):
    run = event_model.compose_run(metadata={"beamtime_id": "11012345"})

    outcomes = await handle(
        [
            record("asapo.messages", asapo_of("raw/a.h5")),
            record(BLUESKY, SERIALISE(("start", run.start_doc))),
            record("filewriter.status", wrdn_of("/ess/coda/run1.hdf")),
            record("asapo.messages", asapo_of("raw/b.h5", message_id=2)),
        ]
    )

    assert outcomes == [None] * 4
    assert [(n, e.type) for n, e in applied] == [
        (0, "file.closed"),
        (1, "run.started"),
        (2, "file.closed"),
        (2, "run.stopped"),
        (3, "file.closed"),
    ]


async def test_broken_message_of_the_right_kind_is_rejected_and_the_rest_applied(handle, applied):
    broken = serialise_wrdn("fw", "job", False, "/f.hdf", json.dumps({"instrument": "CODA"}))

    outcomes = await handle(
        [record("filewriter.status", broken), record("asapo.messages", asapo_of("raw/a.h5"))]
    )

    assert isinstance(outcomes[0], Rejected)
    assert "names no proposal id" in outcomes[0].reason
    assert outcomes[0].error_type == "invalid-native-message"
    assert outcomes[1] is None
    assert [n for n, _ in applied] == [1]


async def test_a_message_giving_an_invalid_event_is_rejected_not_retried(handle, applied):
    too_long = "/" + "d" * 5000 + "/img.cbf"

    outcomes = await handle(
        [record("asapo.messages", asapo_of(too_long)), record("asapo.messages", asapo_of("a"))]
    )

    assert isinstance(outcomes[0], Rejected)
    assert outcomes[0].error_type == "invalid-native-message"
    assert "path: String should have at most 4096 characters" in outcomes[0].reason
    assert outcomes[1] is None and [n for n, _ in applied] == [1]


async def test_a_record_whose_event_the_store_rejects_gets_that_rejection(native, handle, refuse):
    refuse.add("/ess/coda/bad.hdf")

    outcomes = await handle(
        [
            record("filewriter.status", wrdn_of("/ess/coda/bad.hdf")),
            record("filewriter.status", wrdn_of("/ess/coda/good.hdf", job="job2")),
        ]
    )

    assert isinstance(outcomes[0], Rejected)
    assert "bad.hdf" in outcomes[0].reason
    assert outcomes[1] is None
    assert count(native, "wrdn", "converted") == 1


async def test_bluesky_documents_after_the_start_use_the_remembered_run(native, handle, applied):
    run = event_model.compose_run(metadata={"beamtime_id": "11012345"})
    other = event_model.compose_run(metadata={"beamtime_id": "11012346"})

    await handle([record(BLUESKY, SERIALISE(("start", run.start_doc)))])
    await handle(
        [
            record(BLUESKY, SERIALISE(("descriptor", {"uid": "d", "run_start": "x"}))),
            record(BLUESKY, SERIALISE(("start", other.start_doc))),
            record(BLUESKY, SERIALISE(("stop", other.compose_stop()))),
            record(BLUESKY, SERIALISE(("stop", run.compose_stop()))),
        ]
    )

    assert [(e.type, e.data.beamtime_id) for _, e in applied] == [
        ("run.started", "11012345"),
        ("run.started", "11012346"),
        ("run.stopped", "11012346"),
        ("run.stopped", "11012345"),
    ]
    assert {e.data.instrument for _, e in applied} == {"P21"}
    assert count(native, "bluesky", "ignored") == 1
    assert set(native.runs.runs) == {run.start_doc["uid"], other.start_doc["uid"]}


async def test_a_run_started_elsewhere_is_looked_up_once_then_known(applied) -> None:
    """A run started before a restart (or on another replica) is recalled from the store once;
    its later documents, and those of runs started here, need no lookup."""
    run = event_model.compose_run(metadata={"beamtime_id": "11012345"})
    here = event_model.compose_run(metadata={"beamtime_id": "11012346"})
    store = CountingRuns()
    await store.remember(bluesky_adapter.run_of_start(run.start_doc, topic=BLUESKY))

    async def apply(entries, outcomes, deliveries=None) -> None:
        applied.extend(entries)

    native = NativeHandlers(apply=apply, runs=store, metrics=NativeMetrics(CollectorRegistry()))
    handle = native.batch_handler(NativeTopics())
    resource = run.compose_resource(
        spec="AD_HDF5", root="/data", resource_path="a.h5", resource_kwargs={}
    )
    await handle([record(BLUESKY, SERIALISE(("resource", resource.resource_doc)))])
    await handle([record(BLUESKY, SERIALISE(("stop", run.compose_stop())))])
    await handle([record(BLUESKY, SERIALISE(("start", here.start_doc)))])
    await handle([record(BLUESKY, SERIALISE(("stop", here.compose_stop())))])

    assert store.recalled == [run.start_doc["uid"]]
    assert [e.type for _, e in applied][-3:] == ["run.stopped", "run.started", "run.stopped"]


class CountingRuns(MemoryBlueskyRuns):
    def __init__(self) -> None:
        super().__init__()
        self.recalled: list[str] = []

    async def recall(self, uid):
        self.recalled.append(uid)
        return await super().recall(uid)


async def test_foreign_messages_are_counted_and_skipped(native, handle, applied):
    outcomes = await handle(
        [
            record("filewriter.status", b"\x00\x00\x00\x00x5f2rest-of-status"),
            record(BLUESKY, b"not msgpack \xc1"),
            record(BLUESKY, SERIALISE(("heartbeat", {"uid": "x"}))),
            record("asapo.messages", b"[]"),
            record("elsewhere", b"{}"),
        ]
    )

    assert outcomes == [None] * 5
    assert applied == []
    assert [count(native, p, "not-this-kind") for p in ("wrdn", "bluesky", "asapo")] == [1, 2, 1]
    assert count(native, "unknown", "not-this-kind") == 1


async def test_the_applier_learns_where_each_record_was_read() -> None:
    """So that `DEDUPLICATION=offsets` records native records by their offsets too."""
    handed: list = []

    async def apply(entries, outcomes, deliveries=None) -> None:
        handed.append((list(entries), deliveries))

    native = NativeHandlers(
        apply=apply, runs=MemoryBlueskyRuns(), metrics=NativeMetrics(CollectorRegistry())
    )
    await native.batch_handler(NativeTopics())(
        [
            record("asapo.messages", asapo_of("raw/a.h5"), offset=7),
            record("filewriter.status", b"not a flatbuffer", offset=3),
            record("asapo.messages", asapo_of("raw/b.h5", message_id=2), offset=8),
        ]
    )

    [(entries, deliveries)] = handed
    assert [deliveries[position] for position, _ in entries] == [
        Delivery("asapo.messages", 0, 7),
        Delivery("asapo.messages", 0, 8),
    ]
