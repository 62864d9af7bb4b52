"""Reading what landed on a topic, for tests: dead letters, downstream events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from scicat_pipeline.polling import wait_for


async def read_topic(
    bootstrap_servers: str,
    topic: str,
    *,
    expected: int = 1,
    where: Callable[[ConsumerRecord[Any, Any]], bool] = lambda _: True,
    timeout: float = 20.0,
) -> list[ConsumerRecord[Any, Any]]:
    """Every record of `topic` matching `where`, once at least `expected` of them have arrived.

    Reads from the beginning with no consumer group, so it never disturbs the services' offsets.
    """
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[ConsumerRecord[Any, Any]] = []
    try:

        async def enough() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            records.extend(r for part in batch.values() for r in part if where(r))
            return len(records) >= expected

        await wait_for(enough, timeout=timeout, what=f"{expected} record(s) on {topic}")
    finally:
        await consumer.stop()
    return records
