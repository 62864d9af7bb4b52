"""The reliable-consumer loop against a real Kafka broker (tansu)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from scicat_pipeline.testing import wait_for
from scicat_pipeline.testing.topics import read_topic
from scicat_schemas.runtime import dead_letter
from scicat_schemas.runtime.broker import create_broker
from scicat_schemas.runtime.consumer import DEFERRED, ConsumerMetrics, Rejected, ReliableConsumer
from scicat_schemas.runtime.settings import KafkaSettings

TOPIC = "acquisition.events"


async def _produce(bootstrap: str, *values: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(TOPIC, value, key=b"run-1", headers=[("trace", b"t1")])
    finally:
        await producer.stop()


def _consumer(
    bootstrap: str, registry: CollectorRegistry | None = None, **overrides: Any
) -> tuple[ReliableConsumer, Any]:
    registry = registry or CollectorRegistry()
    settings = KafkaSettings(
        bootstrap_servers=bootstrap,
        retry_initial_seconds=0.05,
        session_timeout_ms=1000,
        heartbeat_interval_ms=300,
        rebalance_timeout_ms=1000,
        **overrides,
    )
    broker = create_broker(service="testsvc", kafka=settings, registry=registry)
    return ReliableConsumer(broker, "testsvc", settings, ConsumerMetrics(registry)), broker


async def test_bad_input_is_dead_lettered_with_reason_and_the_next_message_is_processed(
    kafka: str,
) -> None:
    handled: list[dict[str, Any]] = []

    async def handler(record: ConsumerRecord[Any, Any]) -> None:
        try:
            handled.append(json.loads(record.value))
        except ValueError as error:
            raise Rejected(f"not JSON: {error}", error_type="invalid-json") from error

    consumer, broker = _consumer(kafka)
    consumer.subscribe(TOPIC, handler=handler)
    await broker.start()
    try:
        await _produce(kafka, b"{broken", b'{"ok": 1}')
        await wait_for(lambda: _async(handled), what="the good message")
        [letter] = await read_topic(kafka, "testsvc.dlq")
    finally:
        await broker.stop()
    headers = {k: v.decode() for k, v in letter.headers}
    assert letter.value == b"{broken"
    assert letter.key == b"run-1"
    assert headers[dead_letter.ORIGINAL_TOPIC] == TOPIC
    assert headers[dead_letter.ERROR_TYPE] == "invalid-json"
    assert headers[dead_letter.REASON].startswith("not JSON")
    assert int(headers[dead_letter.ORIGINAL_OFFSET]) >= 0
    assert headers["trace"] == "t1"
    assert handled == [{"ok": 1}]


async def test_transient_failure_retries_the_same_message_until_it_succeeds(kafka: str) -> None:
    attempts: list[bytes] = []

    async def flaky(record: ConsumerRecord[Any, Any]) -> None:
        attempts.append(record.value)
        if len(attempts) < 3:
            raise ConnectionError("store down")

    consumer, broker = _consumer(kafka)
    consumer.subscribe(TOPIC, handler=flaky)
    await broker.start()
    try:
        await _produce(kafka, b"first", b"second")
        await wait_for(lambda: _async(len(attempts) >= 4), what="retries then the next message")
    finally:
        await broker.stop()
    assert attempts == [b"first", b"first", b"first", b"second"]


async def test_committed_offsets_are_not_redelivered_after_restart(kafka: str) -> None:
    seen: list[bytes] = []

    async def handler(record: ConsumerRecord[Any, Any]) -> None:
        seen.append(record.value)

    consumer, broker = _consumer(kafka)
    consumer.subscribe(TOPIC, handler=handler)
    await broker.start()
    await _produce(kafka, b"a", b"b")
    await wait_for(lambda: _async(len(seen) == 2), what="two messages")
    await broker.stop()

    consumer2, broker2 = _consumer(kafka)
    consumer2.subscribe(TOPIC, handler=handler)
    await broker2.start()
    try:
        await _produce(kafka, b"c")
        await wait_for(lambda: _async(len(seen) == 3), what="the third message")
    finally:
        await broker2.stop()
    assert seen == [b"a", b"b", b"c"]


async def test_lag_counts_the_records_left_after_each_one_handled(kafka: str) -> None:
    registry = CollectorRegistry()
    seen: list[float | None] = []

    def lag() -> float | None:
        return registry.get_sample_value(
            "scicat_consumer_lag_messages", {"topic": TOPIC, "partition": str(partition)}
        )

    async def handler(record: ConsumerRecord[Any, Any]) -> None:
        seen.append(lag())

    await _produce(kafka, *(f"m{n}".encode() for n in range(5)))
    records = await read_topic(kafka, TOPIC, expected=5)
    partition = records[0].partition
    consumer, broker = _consumer(kafka, registry)
    consumer.subscribe(TOPIC, handler=handler)
    await broker.start()
    try:
        await wait_for(lambda: _async(len(seen) == 5), what="five messages")
        await wait_for(lambda: _async(lag() == 0), what="no lag left")
    finally:
        await broker.stop()
    assert seen[0] is None, "nothing is known before the first commit"
    assert seen[1:] == [4, 3, 2, 1]


async def test_a_deferred_rest_of_a_batch_comes_again_and_only_the_done_part_is_committed(
    kafka: str,
) -> None:
    """A handler out of its time budget defers the rest: the next batch starts there; a record
    rejected after the cut is dead-lettered once, when it is handled for real."""
    batches: list[list[int]] = []
    registry = CollectorRegistry()

    async def handler(records: Sequence[ConsumerRecord[Any, Any]]) -> list[Any]:
        offsets = [record.offset for record in records]
        batches.append(offsets)
        first_call = len(batches) == 1
        outcomes: list[Any] = []
        for offset in offsets:
            if first_call and offset >= 3:
                outcome = Rejected("after the cut") if offset == 4 else DEFERRED
            elif offset in (1, 4):
                outcome = Rejected(f"bad record {offset}", error_type="invalid-json")
            else:
                outcome = None
            outcomes.append(outcome)
        return outcomes

    await _produce(kafka, *(b"v%d" % n for n in range(6)))
    consumer, broker = _consumer(kafka, registry)
    consumer.subscribe_batch(TOPIC, handler=handler, max_records=6, batch_timeout_ms=500)
    await broker.start()
    try:
        await wait_for(lambda: _async(sum(map(len, batches)) >= 9), what="the deferred rest")
        letters = await read_topic(kafka, "testsvc.dlq", expected=2)
    finally:
        await broker.stop()

    assert batches[:2] == [[0, 1, 2, 3, 4, 5], [3, 4, 5]]
    reasons = sorted(dict(letter.headers)[dead_letter.REASON].decode() for letter in letters)
    assert reasons == ["bad record 1", "bad record 4"]
    deferred = registry.get_sample_value("scicat_messages_deferred_total", {"topic": TOPIC})
    assert deferred == 3
    restarted, broker2 = _consumer(kafka)
    again: list[int] = []

    async def after_restart(records: Sequence[ConsumerRecord[Any, Any]]) -> list[None]:
        again.extend(record.offset for record in records)
        return [None] * len(records)

    restarted.subscribe_batch(TOPIC, handler=after_restart, batch_timeout_ms=100)
    await broker2.start()
    try:
        await _produce(kafka, b"v6")
        await wait_for(lambda: _async(again), what="the next record")
    finally:
        await broker2.stop()
    assert again == [6]


async def test_the_consumers_fetch_size_per_partition_is_the_setting(kafka: str) -> None:
    """`max_partition_fetch_bytes` reaches the Kafka consumer a subscription runs (aiokafka's
    default is 1 MiB), and records still arrive whole and in order with a limit below their
    total. (How much one fetch returns is the broker's to decide, so only the configuration
    is asserted, on the live consumer.)"""
    topic = "fetch.limit"
    producer = AIOKafkaProducer(bootstrap_servers=kafka)
    await producer.start()
    try:
        for n in range(40):
            await producer.send_and_wait(topic, b"%03d" % n + b"x" * 200, key=b"one-run")
    finally:
        await producer.stop()
    batches: list[list[int]] = []

    async def handler(records: Sequence[ConsumerRecord[Any, Any]]) -> list[None]:
        batches.append([record.offset for record in records])
        return [None] * len(records)

    consumer, broker = _consumer(kafka, max_partition_fetch_bytes=1024)
    consumer.subscribe_batch(topic, handler=handler, max_records=40, batch_timeout_ms=500)
    await broker.start()
    try:
        await wait_for(lambda: _async(sum(map(len, batches)) >= 40), what="every record")
        [subscriber] = broker.subscribers
        configured = subscriber.consumer._max_partition_fetch_bytes
    finally:
        await broker.stop()

    assert configured == 1024
    assert [offset for batch in batches for offset in batch] == list(range(40))
    assert KafkaSettings().max_partition_fetch_bytes == 4 * 1024 * 1024


async def _async(value: Any) -> Any:
    return value


def test_batch_time_budget_is_half_the_poll_interval_and_must_stay_below_it() -> None:
    assert KafkaSettings().batch_time_budget() == 150.0
    assert KafkaSettings(max_poll_interval_ms=60_000).batch_time_budget() == 30.0
    assert KafkaSettings(batch_time_budget_seconds=20).batch_time_budget() == 20.0
    with pytest.raises(ValidationError, match="must be less than max_poll_interval_ms"):
        KafkaSettings(batch_time_budget_seconds=300)
