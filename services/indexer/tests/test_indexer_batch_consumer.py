"""The reliable consumer's batch outcomes (used by the indexer), records and broker in memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry

from scicat_pipeline.testing.records import BatchMessage, consumer_record
from scicat_schemas.runtime import dead_letter
from scicat_schemas.runtime.consumer import ConsumerMetrics, Rejected, ReliableConsumer
from scicat_schemas.runtime.settings import KafkaSettings


@dataclass
class FakeBroker:
    published: list[tuple[bytes, str, dict[str, str]]] = field(default_factory=list)

    async def publish(self, value: bytes, *, topic: str, key: Any, headers: dict[str, str]) -> None:
        self.published.append((value, topic, headers))


def _record(partition: int, offset: int) -> ConsumerRecord[Any, Any]:
    value = f"{partition}:{offset}".encode()
    return consumer_record("catalogue.datasets", value, partition=partition, offset=offset)


def _consumer(broker: FakeBroker) -> ReliableConsumer:
    kafka = KafkaSettings(retry_initial_seconds=0.001, retry_max_seconds=0.002)
    return ReliableConsumer(broker, "indexer", kafka, ConsumerMetrics(CollectorRegistry()))  # type: ignore[arg-type]


BATCH = (_record(1, 7), _record(0, 5), _record(1, 8), _record(0, 6), _record(2, 3))


async def test_transient_failure_rewinds_every_partition_of_the_batch_to_its_first_record() -> None:
    async def failing(records: Sequence[ConsumerRecord[Any, Any]]) -> list[Rejected | None]:
        raise ConnectionError("OpenSearch unreachable")

    message = BatchMessage(BATCH)
    await _consumer(FakeBroker()).process_batch(message, failing)  # type: ignore[arg-type]
    assert message.outcome == "nack"
    assert message.consumer.seeks == {
        TopicPartition("catalogue.datasets", 0): 5,
        TopicPartition("catalogue.datasets", 1): 7,
        TopicPartition("catalogue.datasets", 2): 3,
    }


async def test_rejected_records_are_dead_lettered_alone_then_the_batch_is_committed() -> None:
    async def one_bad(records: Sequence[ConsumerRecord[Any, Any]]) -> list[Rejected | None]:
        return [
            Rejected("bad date", error_type="index-refused") if r.offset == 8 else None
            for r in records
        ]

    broker = FakeBroker()
    message = BatchMessage(BATCH)
    await _consumer(broker).process_batch(message, one_bad)  # type: ignore[arg-type]
    assert message.outcome == "ack"
    assert message.consumer.seeks == {}
    [(value, topic, headers)] = broker.published
    assert (value, topic) == (b"1:8", "indexer.dlq")
    assert headers[dead_letter.REASON] == "bad date"
    assert headers[dead_letter.ERROR_TYPE] == "index-refused"


async def test_a_handler_answering_for_fewer_records_is_retried_not_committed() -> None:
    async def short(records: Sequence[ConsumerRecord[Any, Any]]) -> list[Rejected | None]:
        return [None]

    message = BatchMessage(BATCH)
    await _consumer(FakeBroker()).process_batch(message, short)  # type: ignore[arg-type]
    assert message.outcome == "nack"
