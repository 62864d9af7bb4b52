"""The reliable-consumer loop against a real Kafka broker (tansu)."""

from __future__ import annotations

import json
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRecord
from prometheus_client import CollectorRegistry

from scicat_pipeline.testing import wait_for
from scicat_pipeline.testing.topics import read_topic
from scicat_schemas.runtime import dead_letter
from scicat_schemas.runtime.broker import create_broker
from scicat_schemas.runtime.consumer import ConsumerMetrics, Rejected, ReliableConsumer
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
    bootstrap: str, registry: CollectorRegistry | None = None
) -> tuple[ReliableConsumer, Any]:
    registry = registry or CollectorRegistry()
    settings = KafkaSettings(
        bootstrap_servers=bootstrap,
        retry_initial_seconds=0.05,
        session_timeout_ms=1000,
        heartbeat_interval_ms=300,
        rebalance_timeout_ms=1000,
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


async def _async(value: Any) -> Any:
    return value
