"""Per-topic metrics of a batch that mixes topics (the ingestor reads two topics together)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry

from scicat_schemas.runtime.consumer import ConsumerMetrics, Rejected, ReliableConsumer
from scicat_schemas.runtime.settings import KafkaSettings


@dataclass
class _Consumer:
    seeks: dict[TopicPartition, int] = field(default_factory=dict)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks[partition] = offset


@dataclass
class _Message:
    raw_message: tuple[ConsumerRecord[Any, Any], ...]
    consumer: _Consumer = field(default_factory=_Consumer)

    async def ack(self) -> None:
        return None

    async def nack(self) -> None:
        return None


def _record(topic: str, offset: int) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=b"v",
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=1,
        headers=(),
    )


BATCH = (
    _record("acquisition.events", 1),
    _record("proposals.events", 1),
    _record("acquisition.events", 2),
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
    await _consumer(registry).process_batch(_Message(BATCH), handle)  # type: ignore[arg-type]

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
    await _consumer(registry).process_batch(_Message(BATCH), failing)  # type: ignore[arg-type]

    name = "scicat_transient_failures_total"
    assert _value(registry, name, topic="acquisition.events") == 1
    assert _value(registry, name, topic="proposals.events") == 1
    assert (
        _value(registry, "scicat_message_duration_seconds_count", topic="acquisition.events") == 0
    )
