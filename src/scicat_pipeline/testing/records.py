"""Kafka records and batch messages made in memory, for tests of handlers and the consumer loop
that need no broker (the broker-backed behaviour is tested against tansu elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition


def consumer_record(
    topic: str,
    value: bytes | None,
    *,
    offset: int = 0,
    partition: int = 0,
    key: bytes | None = b"k",
    headers: tuple[tuple[str, bytes], ...] = (),
    timestamp: int = 0,
) -> ConsumerRecord[Any, Any]:
    """A record as aiokafka hands it to a consumer."""
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=timestamp,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=0 if key is None else len(key),
        serialized_value_size=0 if value is None else len(value),
        headers=headers,
    )


@dataclass
class SeekingConsumer:
    """Remembers where the consumer loop rewound each partition to."""

    seeks: dict[TopicPartition, int] = field(default_factory=dict)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks[partition] = offset


@dataclass
class BatchMessage:
    """What FastStream hands a batch subscriber: the records, ack/nack, the consumer."""

    raw_message: tuple[ConsumerRecord[Any, Any], ...]
    consumer: SeekingConsumer = field(default_factory=SeekingConsumer)
    outcome: str | None = None

    async def ack(self) -> None:
        self.outcome = "ack"

    async def nack(self) -> None:
        self.outcome = "nack"
