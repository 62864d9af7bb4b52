"""The reliable-consumer loop every service uses.

Kafka delivers at least once; this loop turns that into "every message has exactly one outcome":
- the handler returns → its effect is durable and its downstream events are published → commit;
- the handler raises `Rejected` (bad input, can never succeed) → the original bytes go to the
  service's dead-letter topic with the reason in headers → commit, so a poison message never
  blocks its partition;
- anything else (a store or outside service down) → back off with jitter and seek back to the
  same offset, so consumption pauses and resumes without loss once the outage ends.

Offsets are committed explicitly (FastStream `AckPolicy.MANUAL`, no auto-commit), one message at a
time, so a commit never covers a message that has not had its outcome.

`subscribe_batch` applies the same rules to a batch (for stores with a bulk API): the handler
returns one outcome per record, rejected records are dead-lettered one by one, and the offsets are
committed only once every record of the batch has its outcome. A transient failure rewinds every
partition of the batch to its earliest record (a batch can span partitions), so the whole batch
is read again; the handler must therefore be idempotent per record. A handler that runs out of
its time budget returns `DEFERRED` for the rest: each partition is committed up to its first
deferred record, which comes again in the next batch (a consumer that does not poll within
`max_poll_interval_ms` leaves its group, and could then never commit a long batch).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage as InjectedKafkaMessage
from faststream.kafka.message import KafkaMessage

from scicat_schemas.runtime import dead_letter
from scicat_schemas.runtime.consumer_metrics import ConsumerMetrics as ConsumerMetrics
from scicat_schemas.runtime.outcomes import DEFERRED as DEFERRED
from scicat_schemas.runtime.outcomes import Deferred as Deferred
from scicat_schemas.runtime.outcomes import Rejected as Rejected
from scicat_schemas.runtime.outcomes import rejected_from_validation as rejected_from_validation
from scicat_schemas.runtime.settings import KafkaSettings
from scicat_schemas.runtime.tracing import batch_span
from scicat_schemas.topics import dead_letter_topic

log = structlog.get_logger("scicat.consumer")

Handler = Callable[[ConsumerRecord[Any, Any]], Awaitable[None]]

BatchHandler = Callable[
    [Sequence[ConsumerRecord[Any, Any]]], Awaitable[Sequence["Rejected | Deferred | None"]]
]
"""Takes a batch, returns one outcome per record in order: `None` (done), `Rejected`, or
`DEFERRED` (not handled: delivered again, with the records after it in its partition).

Raising means "nothing of this batch is known to be durable": the whole batch is retried.
"""


@dataclass
class ReliableConsumer:
    """Subscribes handlers with the outcome rules above."""

    broker: KafkaBroker
    service: str
    kafka: KafkaSettings
    metrics: ConsumerMetrics
    _attempts: dict[tuple[str, int, int], int] = field(default_factory=dict)

    @property
    def dead_letter_topic(self) -> str:
        return dead_letter_topic(self.service)

    def _membership(self, group_id: str | None) -> dict[str, Any]:
        """How every subscriber joins its group: manual commits, the service's group timing."""
        return {
            "group_id": group_id or self.service,
            "ack_policy": AckPolicy.MANUAL,
            "auto_offset_reset": "earliest",
            "max_poll_interval_ms": self.kafka.max_poll_interval_ms,
            "session_timeout_ms": self.kafka.session_timeout_ms,
            "heartbeat_interval_ms": self.kafka.heartbeat_interval_ms,
            "rebalance_timeout_ms": self.kafka.rebalance_timeout_ms,
            "max_partition_fetch_bytes": self.kafka.max_partition_fetch_bytes,
        }

    def subscribe(
        self,
        *topics: str,
        handler: Handler,
        group_id: str | None = None,
        pattern: str | None = None,
    ) -> Any:
        """Register `handler` for `topics` (or a regex `pattern`) in the service's group."""
        subscriber = self.broker.subscriber(
            *topics,
            pattern=pattern,
            **self._membership(group_id),
        )

        async def on_message(message: InjectedKafkaMessage) -> None:
            await self.process(message, handler)

        on_message.__name__ = (
            f"{self.service}_{getattr(handler, '__name__', type(handler).__name__)}"
        )
        return subscriber(on_message)

    def subscribe_batch(
        self,
        *topics: str,
        handler: BatchHandler,
        group_id: str | None = None,
        pattern: str | None = None,
        max_records: int = 500,
        batch_timeout_ms: int = 200,
    ) -> Any:
        """Register a batch `handler` for `topics` (or a regex `pattern`): up to `max_records`
        records per call."""
        subscriber = self.broker.subscriber(
            *topics,
            pattern=pattern,
            batch=True,
            max_records=max_records,
            batch_timeout_ms=batch_timeout_ms,
            decoder=_records_undecoded,
            **self._membership(group_id),
        )

        async def on_batch(message: InjectedKafkaMessage) -> None:
            await self.process_batch(message, handler)

        on_batch.__name__ = f"{self.service}_{getattr(handler, '__name__', type(handler).__name__)}"
        return subscriber(on_batch)

    async def process_batch(self, message: KafkaMessage, handler: BatchHandler) -> None:
        raw = message.raw_message
        records: tuple[ConsumerRecord[Any, Any], ...] = raw if isinstance(raw, tuple) else (raw,)
        if not records:
            return
        first = records[0]
        where = (first.topic, first.partition, first.offset)
        with structlog.contextvars.bound_contextvars(
            topic=first.topic, partition=first.partition, offset=first.offset, batch=len(records)
        ):
            try:
                began = time.perf_counter()
                with batch_span(
                    self.service, f"{first.topic} handle batch", (r.headers for r in records)
                ):
                    outcomes = list(await handler(records))
                self._observe_batch_duration(records, time.perf_counter() - began)
                if len(outcomes) != len(records):
                    raise RuntimeError(
                        f"batch handler gave {len(outcomes)} outcomes for {len(records)} records"
                    )
                again = deferred_offsets(records, outcomes)
                done = [
                    (record, outcome)
                    for record, outcome in zip(records, outcomes, strict=True)
                    if not _handed_back(record, again)
                ]
                if not done:
                    raise RuntimeError("the batch handler deferred every record: no progress")
                for record, outcome in done:
                    if isinstance(outcome, Rejected):
                        await self.dead_letter(record, outcome.reason, outcome.error_type)
            except Exception as error:
                await self._retry_batch(message, records, where, error)
                return
            self._attempts.pop(where, None)
            processed = Counter(
                (record.topic, "ok" if outcome is None else "dead-lettered")
                for record, outcome in done
            )
            for labels, count in processed.items():
                self.metrics.processed.labels(*labels).inc(count)
            if again:
                self._hand_back(message, records, again)
            await message.ack()
            self._observe_lag(message, [record for record, _ in done])

    def _observe_batch_duration(
        self, records: Sequence[ConsumerRecord[Any, Any]], seconds: float
    ) -> None:
        """Each record's share of the batch's time, under its own topic.

        The histogram is "time per message"; a batch may mix topics (the ingestor reads
        `acquisition.events` and `proposals.events` together), so labelling the whole batch by its
        first record would credit one topic with every other topic's work.
        """
        share = seconds / len(records)
        for topic, count in Counter(record.topic for record in records).items():
            histogram = self.metrics.duration.labels(topic)  # looked up once per topic
            for _ in range(count):
                histogram.observe(share)

    def _hand_back(
        self,
        message: KafkaMessage,
        records: Sequence[ConsumerRecord[Any, Any]],
        again: dict[TopicPartition, int],
    ) -> None:
        """Rewind each partition to its first deferred record: the commit that follows stops
        there, and the next batch starts there."""
        for partition, offset in again.items():
            message.consumer.seek(partition, offset)
        handed_back = [record for record in records if _handed_back(record, again)]
        for record in handed_back:
            self.metrics.deferred.labels(record.topic).inc()
        log.info(
            "batch cut short by its time budget; the rest is delivered again",
            handled=len(records) - len(handed_back),
            handed_back=len(handed_back),
        )

    async def _retry_batch(
        self,
        message: KafkaMessage,
        records: Sequence[ConsumerRecord[Any, Any]],
        where: tuple[str, int, int],
        error: Exception,
    ) -> None:
        attempt = self._attempts.get(where, 0) + 1
        self._attempts[where] = attempt
        for topic in sorted({record.topic for record in records}):
            self.metrics.transient_failures.labels(topic).inc()
        delay = self.backoff(attempt)
        log.warning(
            "transient failure, will retry the whole batch",
            error=repr(error),
            attempt=attempt,
            retry_in_seconds=round(delay, 3),
        )
        await asyncio.sleep(delay)
        for partition, offset in earliest_offsets(records).items():
            message.consumer.seek(partition, offset)
        await message.nack()

    async def process(self, message: KafkaMessage, handler: Handler) -> None:
        record: ConsumerRecord[Any, Any] = message.raw_message
        where = (record.topic, record.partition, record.offset)
        with structlog.contextvars.bound_contextvars(
            topic=record.topic, partition=record.partition, offset=record.offset
        ):
            try:
                with self.metrics.duration.labels(record.topic).time():
                    await handler(record)
            except Rejected as rejected:
                await self.dead_letter(record, rejected.reason, rejected.error_type)
                self._attempts.pop(where, None)
                self.metrics.processed.labels(record.topic, "dead-lettered").inc()
                await message.ack()
                self._observe_lag(message, (record,))
            except Exception as error:
                attempt = self._attempts.get(where, 0) + 1
                self._attempts[where] = attempt
                self.metrics.transient_failures.labels(record.topic).inc()
                delay = self.backoff(attempt)
                log.warning(
                    "transient failure, will retry the same offset",
                    error=repr(error),
                    attempt=attempt,
                    retry_in_seconds=round(delay, 3),
                )
                await asyncio.sleep(delay)
                await message.nack()
            else:
                self._attempts.pop(where, None)
                self.metrics.processed.labels(record.topic, "ok").inc()
                await message.ack()
                self._observe_lag(message, (record,))

    def _observe_lag(
        self, message: KafkaMessage, records: Sequence[ConsumerRecord[Any, Any]]
    ) -> None:
        """After a commit: what is left on each partition of `records`, as last fetched.

        Read from the consumer's own fetch state (no request to the broker), so it costs nothing;
        it is as fresh as the last fetch, and a consumer stuck retrying does not update it (its
        `scicat_transient_failures_total` rises instead).
        """
        highwater = getattr(message.consumer, "highwater", None)
        if highwater is None:
            return
        handled: dict[tuple[str, int], int] = {}
        for record in records:
            key = (record.topic, record.partition)
            handled[key] = max(record.offset, handled.get(key, record.offset))
        for (topic, number), offset in handled.items():
            mark = highwater(TopicPartition(topic, number))
            if mark is not None:
                self.metrics.lag.labels(topic, str(number)).set(max(mark - offset - 1, 0))

    def backoff(self, attempt: int) -> float:
        """Exponential back-off with full jitter, capped so the consumer stays in its group."""
        ceiling = min(
            self.kafka.retry_max_seconds, self.kafka.retry_initial_seconds * 2 ** (attempt - 1)
        )
        return random.uniform(ceiling / 2, ceiling)

    async def dead_letter(
        self, record: ConsumerRecord[Any, Any], reason: str, error_type: str
    ) -> None:
        """Publish the original bytes with the reason; returns once the broker has the record."""
        headers = {k: v.decode(errors="replace") for k, v in (record.headers or ())}
        headers.update(
            dead_letter.dead_letter_headers(
                reason=reason,
                error_type=error_type,
                service=self.service,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )
        )
        await self.broker.publish(
            record.value or b"",
            topic=self.dead_letter_topic,
            key=record.key,
            headers=headers,
        )
        self.metrics.dead_letters.labels(record.topic, error_type).inc()
        log.warning(
            "dead-lettered", reason=reason, error_type=error_type, dlq=self.dead_letter_topic
        )


def deferred_offsets(
    records: Sequence[ConsumerRecord[Any, Any]], outcomes: Sequence[Rejected | Deferred | None]
) -> dict[TopicPartition, int]:
    """The first deferred offset of each partition that has one."""
    deferred = [r for r, o in zip(records, outcomes, strict=True) if isinstance(o, Deferred)]
    return earliest_offsets(deferred)


def _partition_of(record: ConsumerRecord[Any, Any]) -> TopicPartition:
    return TopicPartition(record.topic, record.partition)


def _handed_back(record: ConsumerRecord[Any, Any], again: dict[TopicPartition, int]) -> bool:
    first = again.get(_partition_of(record))
    return first is not None and record.offset >= first


def earliest_offsets(records: Sequence[ConsumerRecord[Any, Any]]) -> dict[TopicPartition, int]:
    """The first offset of each partition in a batch: where to rewind so none is skipped."""
    earliest: dict[TopicPartition, int] = {}
    for record in records:
        partition = _partition_of(record)
        earliest[partition] = min(record.offset, earliest.get(partition, record.offset))
    return earliest


async def _records_undecoded(message: KafkaMessage, _default: Callable[..., Any]) -> Any:
    """A batch's bodies as they are: batch handlers read the records themselves, and FastStream's
    own decoder would build a message and JSON-decode every record into a value nothing uses
    (~14% of the ingestor's CPU per event, measured with py-spy)."""
    return message.body
