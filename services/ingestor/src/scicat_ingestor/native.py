"""Producers' native topics → the same processing path CloudEvents take.

Each handler decodes a record with its pure adapter (`scicat_ingestor.adapters`), does the I/O the
adapter must not (the size of a file the producer did not measure, the bluesky run context),
then passes each resulting event to `AcquisitionHandler.handle_event`, so idempotency,
transactions, `dataset.stored` and the dead-letter rules are exactly those of
`acquisition.events`.

Outcomes, each counted in `scicat_ingestor_native_messages_total{producer, outcome}`:
- `converted`: became events that were applied;
- `not-this-kind`: another schema on a shared topic (an `answ` flatbuffer beside wrdn, a JSON
  record without `message`...): skipped, never fatal;
- `ignored`: the right kind, but nothing the catalogue needs (bluesky descriptors and events);
- `writer-failed`: a wrdn with `error_encountered`: the file is not ingested, a warning with the
  job, file and the writer's message is logged;
- a message of the right kind that is broken raises `Rejected` → `ingestor.dlq` with the reason.

All enabled native topics are read by one consumer in the group `ingestor-native`, subscribed
by one regex (`NativeTopics.pattern`), and each record is routed by its topic. A bluesky topic
created after start-up is picked up at the consumer's next metadata refresh (aiokafka
`metadata_max_age_ms`, 5 minutes by default).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from aiokafka import ConsumerRecord
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, Field
from pymongo import AsyncMongoClient

from scicat_ingestor.adapters import BrokenMessage, NotThisKind, asapo, bluesky, from_epoch, wrdn
from scicat_ingestor.handlers import AcquisitionEvent
from scicat_schemas.events import FileClosed
from scicat_schemas.runtime.consumer import Rejected, ReliableConsumer
from scicat_schemas.runtime.settings import MongoSettings

log = structlog.get_logger("scicat.ingestor.native")

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


ApplyEvent = Callable[[AcquisitionEvent], Awaitable[None]]


@dataclass
class NativeHandlers:
    apply: ApplyEvent
    runs: BlueskyRuns
    metrics: NativeMetrics
    size_of: Callable[[str], int | None] = file_size

    async def filewriter(self, record: ConsumerRecord[Any, Any]) -> None:
        with _refusals("wrdn", self.metrics):
            outcome = wrdn.from_wrdn(record.value, received_at=_received_at(record))
            if isinstance(outcome, wrdn.WriteFailed):
                self.metrics.messages.labels("wrdn", "writer-failed").inc()
                log.warning(
                    "file-writer reported an error; the file is not ingested",
                    job_id=outcome.job_id,
                    file_name=outcome.file_name,
                    writer_message=outcome.message,
                    writer=outcome.service_id,
                )
                return
            await self._apply("wrdn", outcome)

    async def bluesky(self, record: ConsumerRecord[Any, Any]) -> None:
        with _refusals("bluesky", self.metrics):
            name, doc = bluesky.decode_document(record.value)
            uid = bluesky.run_uid_of(name, doc)
            if uid is None:
                self.metrics.messages.labels("bluesky", "ignored").inc()
                return
            if name == "start":
                started = bluesky.run_of_start(doc, topic=record.topic)
                await self.runs.remember(started)
                run: bluesky.BlueskyRun | None = started
            else:
                run = await self.runs.recall(uid)
            events = bluesky.events_of(
                name, doc, topic=record.topic, run=run, received_at=_received_at(record)
            )
            await self._apply("bluesky", events)

    async def asapo(self, record: ConsumerRecord[Any, Any]) -> None:
        with _refusals("asapo", self.metrics):
            await self._apply("asapo", [asapo.from_asapo(record.value)])

    def subscribe(self, consumer: ReliableConsumer, topics: NativeTopics) -> None:
        """Subscribe every enabled native topic with ONE consumer (group `<service>-native`).

        One pattern subscription instead of one per producer: each consumer costs a group join
        at start-up, and a record is routed to its producer's handler by its topic anyway.
        """
        if topics.pattern() is not None:
            consumer.subscribe(
                handler=self.route(topics),
                group_id=f"{consumer.service}-native",
                pattern=topics.pattern(),
            )

    def route(self, topics: NativeTopics) -> Callable[[ConsumerRecord[Any, Any]], Awaitable[None]]:
        """The handler of the combined subscription: dispatches each record by its topic."""
        bluesky_topic = re.compile(topics.bluesky_pattern) if topics.bluesky_pattern else None

        async def native(record: ConsumerRecord[Any, Any]) -> None:
            if topics.filewriter and record.topic == topics.filewriter:
                await self.filewriter(record)
            elif topics.asapo and record.topic == topics.asapo:
                await self.asapo(record)
            elif bluesky_topic is not None and bluesky_topic.fullmatch(record.topic):
                await self.bluesky(record)
            else:
                self.metrics.messages.labels("unknown", "not-this-kind").inc()

        return native

    async def _apply(self, producer: str, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, FileClosed) and event.data.size == 0:
                size = self.size_of(event.data.path)
                if size:
                    event = event.model_copy(
                        update={"data": event.data.model_copy(update={"size": size})}
                    )
            await self.apply(event)
        self.metrics.messages.labels(producer, "converted" if events else "ignored").inc()


def with_bluesky_runs(
    resources: Callable[[], AbstractAsyncContextManager[Any]], runs: MongoBlueskyRuns
) -> Callable[[], AbstractAsyncContextManager[Any]]:
    """The service's resources plus the bluesky run-context client, opened and closed together."""

    @asynccontextmanager
    async def both() -> AsyncIterator[None]:
        async with resources(), runs.connected():
            yield

    return both


@contextmanager
def _refusals(producer: str, metrics: NativeMetrics) -> Iterator[None]:
    """Turns adapter refusals into outcomes: skip-and-count, or a dead letter with the reason."""
    try:
        yield
    except NotThisKind as error:
        metrics.messages.labels(producer, "not-this-kind").inc()
        log.info("skipped a message of another kind", producer=producer, why=str(error))
    except BrokenMessage as error:
        raise Rejected(
            f"{producer} message cannot be ingested: {error}",
            error_type="invalid-native-message",
        ) from error


def _received_at(record: ConsumerRecord[Any, Any]) -> datetime:
    """The Kafka record time (ms), the only time wrdn and resource documents have."""
    if isinstance(record.timestamp, int) and record.timestamp > 0:
        return from_epoch(record.timestamp, "ms")
    return datetime.now(UTC)
