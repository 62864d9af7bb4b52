"""Producers' native topics → the same processing path CloudEvents take.

Records come in batches, as on `acquisition.events`. Each record is decoded by its producer's pure
adapter (`scicat_ingestor.adapters`), in order, with the I/O the adapter must not do (the bluesky
run context; the size of a file the producer did not measure, looked up in a worker thread);
then the batch's events go to `BatchIngestor.apply_in_order`: runs of acquisition events in one
MongoDB transaction, so idempotency, transactions, `dataset.stored` and the dead-letter rules
are exactly those of `acquisition.events`, and a native topic is ingested as fast. A record that
gives several events (a wrdn: the file and the run's stop) is dead-lettered when any of them is
rejected; the others are applied (replaying the dead letter applies nothing twice).

Outcomes, each counted in `scicat_ingestor_native_messages_total{producer, outcome}`:
- `converted`: became events that were applied;
- `not-this-kind`: another schema on a shared topic (an `answ` flatbuffer beside wrdn, a JSON
  record without `message`...): skipped, never fatal;
- `ignored`: the right kind, but nothing the catalogue needs (bluesky descriptors and events);
- `writer-failed`: a wrdn with `error_encountered`: the file is not ingested, a warning with the
  job, file and the writer's message is logged;
- a message of the right kind that is broken is `Rejected` → `ingestor.dlq` with the reason.

All enabled native topics are read by one consumer in the group `ingestor-native`, subscribed
by one regex (`NativeTopics.pattern`), and each record is routed by its topic. A bluesky topic
created after start-up is picked up at the consumer's next metadata refresh
(`KAFKA__METADATA_MAX_AGE_MS`, 30 s by default) and read from its beginning.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from aiokafka import ConsumerRecord
from cachetools import LRUCache
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, Field, ValidationError
from pymongo import AsyncMongoClient

from scicat_ingestor.adapters import BrokenMessage, NotThisKind, asapo, bluesky, from_epoch, wrdn
from scicat_ingestor.handlers import AcquisitionEvent
from scicat_ingestor.store_values import Delivery
from scicat_schemas.events import FileClosed
from scicat_schemas.runtime.consumer import (
    Deferred,
    Rejected,
    ReliableConsumer,
    rejected_from_validation,
)
from scicat_schemas.runtime.settings import MongoSettings

log = structlog.get_logger("scicat.ingestor.native")

KNOWN_RUNS = 1024
"""Bluesky runs kept in memory, so a run's later documents need no MongoDB lookup: a run's
context comes from its start document and never changes."""

BLUESKY_RUN_COLLECTION = "PipelineBlueskyRun"
"""Start-document context of each bluesky run, so a restart mid-run loses nothing."""


class NativeTopics(BaseModel):
    """Which native topics the ingestor reads; an empty value disables that producer."""

    filewriter: str = Field(
        default="filewriter.status", description="ESS file-writer status topic (wrdn)."
    )
    bluesky_pattern: str = Field(
        default=r".*\.bluesky\.runengine\.documents",
        description="Regex of bluesky-kafka topics (`<tla>.bluesky.runengine.documents`).",
    )
    asapo: str = Field(default="asapo.messages", description="ASAP::O message-metadata topic.")

    def pattern(self) -> str | None:
        """One regex matching every enabled native topic, or None when all are disabled."""
        parts = [re.escape(t) for t in (self.filewriter, self.asapo) if t]
        if self.bluesky_pattern:
            parts.append(f"(?:{self.bluesky_pattern})")
        return f"^(?:{'|'.join(parts)})$" if parts else None


def file_size(path: str) -> int | None:
    """The size of `path` when the ingestor can see it, else None (size stays unknown: 0)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return None


class BlueskyRuns(Protocol):
    async def remember(self, run: bluesky.BlueskyRun) -> None: ...

    async def recall(self, uid: str) -> bluesky.BlueskyRun | None: ...


@dataclass
class MemoryBlueskyRuns:
    """`BlueskyRuns` in a dict, for tests and `scicat-pipeline ingest`."""

    runs: dict[str, bluesky.BlueskyRun] = field(default_factory=dict)

    async def remember(self, run: bluesky.BlueskyRun) -> None:
        self.runs[run.uid] = run

    async def recall(self, uid: str) -> bluesky.BlueskyRun | None:
        return self.runs.get(uid)


class MongoBlueskyRuns:
    """`BlueskyRuns` in MongoDB (`PipelineBlueskyRun`, `_id` = start uid)."""

    def __init__(self, settings: MongoSettings) -> None:
        self._settings = settings
        self._client: AsyncMongoClient[dict[str, Any]] | None = None

    @asynccontextmanager
    async def connected(self) -> AsyncIterator[MongoBlueskyRuns]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            self._settings.uri,
            tz_aware=True,
            serverSelectionTimeoutMS=self._settings.timeout_ms,
            appname="scicat-ingestor-native",
        )
        self._client = client
        try:
            yield self
        finally:
            self._client = None
            await client.close()

    @property
    def _runs(self) -> Any:
        if self._client is None:
            raise RuntimeError("the MongoDB client is not open; use `async with runs.connected()`")
        return self._client[self._settings.database][BLUESKY_RUN_COLLECTION]

    async def remember(self, run: bluesky.BlueskyRun) -> None:
        await self._runs.replace_one(
            {"_id": run.uid},
            {
                "_id": run.uid,
                "beamtimeId": run.beamtime_id,
                "instrument": run.instrument,
                "source": run.source,
            },
            upsert=True,
        )

    async def recall(self, uid: str) -> bluesky.BlueskyRun | None:
        doc = await self._runs.find_one({"_id": uid})
        if doc is None:
            return None
        return bluesky.BlueskyRun(
            uid=uid,
            beamtime_id=doc["beamtimeId"],
            instrument=doc["instrument"],
            source=doc["source"],
        )


@dataclass
class NativeMetrics:
    registry: CollectorRegistry
    messages: Counter = field(init=False)

    def __post_init__(self) -> None:
        self.messages = Counter(
            "scicat_ingestor_native_messages",
            "Native-topic messages by producer and outcome (dead letters are counted by the "
            "consumer's scicat_dead_letters_total).",
            ["producer", "outcome"],
            registry=self.registry,
        )


Outcomes = list[Rejected | Deferred | None]


ApplyEvents = Callable[
    [Sequence[tuple[int, AcquisitionEvent]], Outcomes, Sequence[Delivery] | None], Awaitable[None]
]
"""Applies events in order, each paired with its record's position, with where each record was
read; sets rejected records' outcomes (`BatchIngestor.apply_in_order`)."""


@dataclass
class NativeHandlers:
    """A batch of native records → their events → applied in order, as `acquisition.events`."""

    apply: ApplyEvents
    runs: BlueskyRuns
    metrics: NativeMetrics
    size_of: Callable[[str], int | None] = file_size
    _known_runs: LRUCache[str, bluesky.BlueskyRun] = field(
        default_factory=lambda: LRUCache(maxsize=KNOWN_RUNS)
    )

    def subscribe(
        self,
        consumer: ReliableConsumer,
        topics: NativeTopics,
        *,
        max_records: int = 500,
        batch_timeout_ms: int = 200,
    ) -> None:
        """Subscribe every enabled native topic with ONE consumer (group `<service>-native`).

        One pattern subscription instead of one per producer: each consumer costs a group join
        at start-up, and a record is routed to its producer's adapter by its topic anyway.
        """
        pattern = topics.pattern()
        if pattern is not None:
            consumer.subscribe_batch(
                handler=self.batch_handler(topics),
                group_id=f"{consumer.service}-native",
                pattern=pattern,
                max_records=max_records,
                batch_timeout_ms=batch_timeout_ms,
            )

    def batch_handler(
        self, topics: NativeTopics
    ) -> Callable[[Sequence[ConsumerRecord[Any, Any]]], Awaitable[Outcomes]]:
        """The handler of the combined subscription: each record converted by its topic's
        adapter, in order, then all their events applied together."""
        bluesky_topic = re.compile(topics.bluesky_pattern) if topics.bluesky_pattern else None

        def producer_of(topic: str) -> str | None:
            if topics.filewriter and topic == topics.filewriter:
                return "wrdn"
            if topics.asapo and topic == topics.asapo:
                return "asapo"
            if bluesky_topic is not None and bluesky_topic.fullmatch(topic):
                return "bluesky"
            return None

        async def native(records: Sequence[ConsumerRecord[Any, Any]]) -> Outcomes:
            outcomes: Outcomes = [None] * len(records)
            entries: list[tuple[int, AcquisitionEvent]] = []
            converted: dict[int, str] = {}
            for position, record in enumerate(records):
                producer = producer_of(record.topic)
                if producer is None:
                    self.metrics.messages.labels("unknown", "not-this-kind").inc()
                    continue
                try:
                    events = await self._events_of(producer, record)
                except Rejected as rejected:
                    outcomes[position] = rejected
                    continue
                if events:
                    converted[position] = producer
                    entries.extend((position, event) for event in events)
            deliveries = [Delivery.of(record) for record in records]
            await self.apply(await self._with_sizes(entries), outcomes, deliveries)
            counted: dict[str, int] = {}
            for position, producer in converted.items():
                if outcomes[position] is None:
                    counted[producer] = counted.get(producer, 0) + 1
            for producer, count in counted.items():  # labels looked up per batch, not record
                self.metrics.messages.labels(producer, "converted").inc(count)
            return outcomes

        return native

    async def _events_of(
        self,
        producer: str,
        record: ConsumerRecord[Any, Any],
    ) -> list[AcquisitionEvent]:
        """The record's events; none when it is skipped (counted here) or rejected (raised)."""
        events: list[AcquisitionEvent]
        try:
            if producer == "wrdn":
                outcome = wrdn.from_wrdn(record.value, received_at=_received_at(record))
                if isinstance(outcome, wrdn.WriteFailed):
                    self._writer_failed(outcome)
                    return []
                events = list(outcome)
            elif producer == "asapo":
                events = [asapo.from_asapo(record.value)]
            else:
                events = await self._bluesky_events(record)
        except (NotThisKind, BrokenMessage, ValidationError) as error:
            _refused(producer, self.metrics, error)
            return []
        if not events:
            self.metrics.messages.labels(producer, "ignored").inc()
        return events

    async def _bluesky_events(self, record: ConsumerRecord[Any, Any]) -> list[AcquisitionEvent]:
        name, doc = bluesky.decode_document(record.value)
        uid = bluesky.run_uid_of(name, doc)
        if uid is None:
            return []
        if name == "start":
            start = bluesky.run_of_start(doc, topic=record.topic)
            await self.runs.remember(start)
            self._known_runs[uid] = start
            run: bluesky.BlueskyRun | None = start
        else:
            run = self._known_runs.get(uid) or await self.runs.recall(uid)
            if run is not None:
                self._known_runs[uid] = run
        return list(
            bluesky.events_of(
                name, doc, topic=record.topic, run=run, received_at=_received_at(record)
            )
        )

    def _writer_failed(self, failed: wrdn.WriteFailed) -> None:
        self.metrics.messages.labels("wrdn", "writer-failed").inc()
        log.warning(
            "file-writer reported an error; the file is not ingested",
            job_id=failed.job_id,
            file_name=failed.file_name,
            writer_message=failed.message,
            writer=failed.service_id,
        )

    async def _with_sizes(
        self, entries: list[tuple[int, AcquisitionEvent]]
    ) -> list[tuple[int, AcquisitionEvent]]:
        """Files announced without a size get theirs from the file when the ingestor sees it;
        the batch's lookups run in one worker thread (a `stat` on a busy parallel file system
        can take long)."""
        unknown = {
            n: event
            for n, (_, event) in enumerate(entries)
            if isinstance(event, FileClosed) and event.data.size == 0
        }
        if not unknown:
            return entries
        paths = [event.data.path for event in unknown.values()]
        sizes = await asyncio.to_thread(lambda: [self.size_of(path) for path in paths])
        sized = list(entries)
        for (n, event), size in zip(unknown.items(), sizes, strict=True):
            if size:
                data = event.data.model_copy(update={"size": size})
                sized[n] = (sized[n][0], event.model_copy(update={"data": data}))
        return sized


def with_bluesky_runs(
    resources: Callable[[], AbstractAsyncContextManager[Any]], runs: MongoBlueskyRuns
) -> Callable[[], AbstractAsyncContextManager[Any]]:
    """The service's resources plus the bluesky run-context client, opened and closed together."""

    @asynccontextmanager
    async def both() -> AsyncIterator[None]:
        async with resources(), runs.connected():
            yield

    return both


def _refused(
    producer: str, metrics: NativeMetrics, error: NotThisKind | BrokenMessage | ValidationError
) -> None:
    """An adapter's refusal as an outcome: skip-and-count, or `Rejected` (a dead letter) with the
    reason. (A function called on the rare refusal, not a context manager entered per record.)"""
    if isinstance(error, NotThisKind):
        metrics.messages.labels(producer, "not-this-kind").inc()
        log.info("skipped a message of another kind", producer=producer, why=str(error))
        return
    if isinstance(error, BrokenMessage):
        raise Rejected(
            f"{producer} message cannot be ingested: {error}",
            error_type="invalid-native-message",
        ) from error
    # Adapters are pure: an event they cannot build is the message's fault (a path longer than
    # PATH_MAX...), never worth a retry.
    rejected = rejected_from_validation(error, what=f"the event made of the {producer} message")
    raise Rejected(rejected.reason, error_type="invalid-native-message") from error


def _received_at(record: ConsumerRecord[Any, Any]) -> datetime:
    """The Kafka record time (ms), the only time wrdn and resource documents have."""
    if isinstance(record.timestamp, int) and record.timestamp > 0:
        return from_epoch(record.timestamp, "ms")
    return datetime.now(UTC)
