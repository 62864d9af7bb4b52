"""Per-topic metrics of a batch that mixes topics (the ingestor reads two topics together)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry

from scicat_pipeline.testing.records import BatchMessage, SeekingConsumer, consumer_record
from scicat_schemas.runtime.consumer import (
    DEFERRED,
    ConsumerMetrics,
    Deferred,
    Rejected,
    ReliableConsumer,
)
from scicat_schemas.runtime.settings import KafkaSettings

BATCH = (
    consumer_record("acquisition.events", b"v", offset=1),
    consumer_record("proposals.events", b"v", offset=1),
    consumer_record("acquisition.events", b"v", offset=2),
)


def _consumer(registry: CollectorRegistry) -> ReliableConsumer:
    kafka = KafkaSettings(retry_initial_seconds=0.001, retry_max_seconds=0.002)
    return ReliableConsumer(None, "ingestor", kafka, ConsumerMetrics(registry))  # type: ignore[arg-type]


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_a_mixed_batch_counts_each_message_under_its_own_topic() -> None:
    async def handle(records: Sequence[ConsumerRecord[Any, Any]]) -> list[Rejected | None]:
        return [None] * len(records)

    registry = CollectorRegistry()
    await _consumer(registry).process_batch(BatchMessage(BATCH), handle)  # type: ignore[arg-type]

    count = "scicat_message_duration_seconds_count"
    assert _value(registry, count, topic="acquisition.events") == 2
    assert _value(registry, count, topic="proposals.events") == 1
    assert (
        _value(registry, "scicat_messages_processed_total", topic="proposals.events", outcome="ok")
        == 1
    )


async def test_a_failed_mixed_batch_counts_a_transient_failure_for_every_topic_in_it() -> None:
    async def failing(records: Sequence[ConsumerRecord[Any, Any]]) -> list[Rejected | None]:
        raise ConnectionError("MongoDB unreachable")

    registry = CollectorRegistry()
    await _consumer(registry).process_batch(BatchMessage(BATCH), failing)  # type: ignore[arg-type]

    name = "scicat_transient_failures_total"
    assert _value(registry, name, topic="acquisition.events") == 1
    assert _value(registry, name, topic="proposals.events") == 1
    assert (
        _value(registry, "scicat_message_duration_seconds_count", topic="acquisition.events") == 0
    )


async def test_after_a_batch_the_lag_of_each_partition_is_what_follows_its_last_record() -> None:
    @dataclass
    class FetchingConsumer(SeekingConsumer):
        marks: dict[TopicPartition, int] = field(default_factory=dict)

        def highwater(self, partition: TopicPartition) -> int | None:
            return self.marks.get(partition)

    async def handle(records: Sequence[ConsumerRecord[Any, Any]]) -> list[Rejected | None]:
        return [None] * len(records)

    consumer = FetchingConsumer(
        marks={
            TopicPartition("acquisition.events", 0): 10,
            TopicPartition("proposals.events", 0): 2,
        }
    )
    registry = CollectorRegistry()
    await _consumer(registry).process_batch(BatchMessage(BATCH, consumer), handle)  # type: ignore[arg-type]

    lag = "scicat_consumer_lag_messages"
    assert _value(registry, lag, topic="acquisition.events", partition="0") == 7
    assert _value(registry, lag, topic="proposals.events", partition="0") == 0


async def test_a_batch_deferred_whole_backs_off_as_a_failure_would() -> None:
    """A handler that hands every record back makes no progress: rather than read the same batch
    again at once, the consumer backs off and counts it."""

    async def defer_all(records: Sequence[ConsumerRecord[Any, Any]]) -> list[Deferred]:
        return [DEFERRED] * len(records)

    registry = CollectorRegistry()
    consumer = SeekingConsumer()
    await _consumer(registry).process_batch(BatchMessage(BATCH, consumer), defer_all)  # type: ignore[arg-type]

    assert _value(registry, "scicat_transient_failures_total", topic="acquisition.events") == 1
    assert _value(registry, "scicat_messages_deferred_total", topic="acquisition.events") == 0
