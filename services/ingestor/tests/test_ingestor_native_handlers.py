"""Native-topic handlers without a broker: routing, outcomes, file sizes, run context."""

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

from scicat_ingestor.native import MemoryBlueskyRuns, NativeHandlers, NativeMetrics, NativeTopics
from scicat_pipeline.testing.records import consumer_record
from scicat_schemas.runtime.consumer import Rejected

SERIALISE = inspect.signature(Publisher.__init__).parameters["serializer"].default
BLUESKY = "p21.bluesky.runengine.documents"


def record(topic: str, value: bytes, offset: int = 0) -> ConsumerRecord:
    return consumer_record(topic, value, offset=offset, key=None, timestamp=1772359200000)


@pytest.fixture
def applied() -> list:
    return []


@pytest.fixture
def native(applied) -> NativeHandlers:
    async def apply(event) -> None:
        applied.append(event)

    return NativeHandlers(
        apply=apply, runs=MemoryBlueskyRuns(), metrics=NativeMetrics(CollectorRegistry())
    )


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


async def test_wrdn_file_gets_its_size_from_the_file_when_readable(native, applied, tmp_path):
    data = tmp_path / "run.hdf"
    data.write_bytes(b"\0" * 4096)
    metadata = json.dumps({"proposal_id": "1", "instrument_name": "CODA"})

    await native.route(NativeTopics())(
        record("filewriter.status", serialise_wrdn("fw", "job", False, str(data), metadata))
    )

    [event, stopped] = applied
    assert (event.data.path, event.data.size) == (str(data), 4096)
    assert stopped.type == "run.stopped"
    assert count(native, "wrdn", "converted") == 1


async def test_broken_message_of_the_right_kind_is_rejected_with_the_reason(native, applied):
    broken = serialise_wrdn("fw", "job", False, "/f.hdf", json.dumps({"instrument": "CODA"}))

    with pytest.raises(Rejected, match="names no proposal id") as rejected:
        await native.filewriter(record("filewriter.status", broken))

    assert rejected.value.error_type == "invalid-native-message"
    assert applied == []


async def test_bluesky_documents_after_the_start_use_the_remembered_run(native, applied):
    run = event_model.compose_run(metadata={"beamtime_id": "11012345"})
    handle = native.route(NativeTopics())

    await handle(record(BLUESKY, SERIALISE(("start", run.start_doc))))
    await handle(record(BLUESKY, SERIALISE(("descriptor", {"uid": "d", "run_start": "x"}))))
    await handle(record(BLUESKY, SERIALISE(("stop", run.compose_stop()))))

    assert [e.type for e in applied] == ["run.started", "run.stopped"]
    assert {e.data.instrument for e in applied} == {"P21"}
    assert count(native, "bluesky", "ignored") == 1


async def test_foreign_messages_are_counted_and_skipped(native, applied):
    handle = native.route(NativeTopics())

    await handle(record("filewriter.status", b"\x00\x00\x00\x00x5f2rest-of-status"))
    await handle(record(BLUESKY, b"not msgpack \xc1"))
    await handle(record(BLUESKY, SERIALISE(("heartbeat", {"uid": "x"}))))
    await handle(record("asapo.messages", b"[]"))

    assert applied == []
    assert [count(native, p, "not-this-kind") for p in ("wrdn", "bluesky", "asapo")] == [1, 2, 1]
