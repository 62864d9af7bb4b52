"""A small typed producer for beamline code: build, validate, route and send our CloudEvents.

```python
async with EventProducer("kafka:9092", source="/desy/p08/sardana") as producer:
    started = await producer.run_started(run_id="scan_001", beamtime_id="11012345",
                                         instrument="P08")
    await producer.file_closed(run_id="scan_001", beamtime_id="11012345", instrument="P08",
                               path="/gpfs/current/raw/scan_001/img_1.cbf", size=1024)
    await producer.run_stopped(run_id="scan_001", beamtime_id="11012345", instrument="P08")
```

Every event is a pydantic model, so a wrong field fails here, at the producer, with pydantic's
`ValidationError` naming it, before anything is sent. Each type goes to its contract topic with
its contract key (`topics.py`), so the ingestor sees one run's events in order. Sends wait for
`acks=all`. Ids are derived from the event's content (`natural_event_id`) unless given: a script
that re-sends after a timeout, not knowing whether the first send arrived, sends the same
(`source`, `id`) and the ingestor applies it once. That is what makes resends safe, so Kafka's
idempotent producer is not needed (and the embedded tansu broker does not offer
`InitProducerId`). Pass explicit times for resend-safe ids: a default "now" differs per call.
Publication requests, amendments and withdrawals are built by `publication_requested`,
`publication_amendment_requested` and `publication_withdrawal_requested` (pure, so a caller can
show an event before sending it) and sent with `EventProducer.send`; the same request sent twice
has the same id, and the doi-minter acts on it once.
A cluster that authenticates clients takes `security=KafkaSecurity(protocol="SASL_SSL", ...)`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

from aiokafka import AIOKafkaProducer

from scicat_schemas.events import (
    BeamtimeUpdated,
    BeamtimeUpdatedData,
    Checksum,
    CloudEvent,
    FileClosed,
    FileClosedData,
    PublicationAmendmentRequested,
    PublicationAmendmentRequestedData,
    PublicationDescription,
    PublicationRequested,
    PublicationRequestedData,
    PublicationWithdrawalRequested,
    PublicationWithdrawalRequestedData,
    RunStarted,
    RunStartedData,
    RunStopped,
    RunStoppedData,
    encode,
)
from scicat_schemas.runtime.kafka_security import client_options
from scicat_schemas.runtime.settings import KafkaSecurity
from scicat_schemas.topics import (
    ACQUISITION_EVENTS,
    CATALOGUE_DATASETS,
    CATALOGUE_PUBLICATIONS,
    PROPOSALS_EVENTS,
)

CLOUDEVENTS_JSON = "application/cloudevents+json"


class UnroutableEvent(ValueError):
    """An event type with no contract topic (a typo in `type`, or a custom event)."""


def route(event: CloudEvent) -> tuple[str, str]:
    """The contract topic and key of `event`: `(topic, key)`."""
    kind: str = getattr(event, "type", "")
    data: Any = getattr(event, "data", None)
    if kind in ("run.started", "file.closed", "run.stopped"):
        return ACQUISITION_EVENTS, str(data.run_id)
    if kind == "beamtime.updated":
        return PROPOSALS_EVENTS, str(data.beamtime_id)
    if kind == "dataset.stored":
        return CATALOGUE_DATASETS, str(data.dataset.pid)
    if kind == "dataset.deleted":
        return CATALOGUE_DATASETS, str(data.pid)
    if kind.startswith("publication."):
        return CATALOGUE_PUBLICATIONS, str(data.publication_id)
    raise UnroutableEvent(f"no contract topic for event type {kind!r}")


def natural_event_id(kind: str, data: Any) -> str:
    """A deterministic id: `<type>:<run or beamtime>:<digest of the payload>`.

    The same payload gives the same id (a resend is a duplicate); a changed file (another size,
    checksum or close time) or changed metadata gives a new id, so it is applied as a change.
    """
    payload = json.dumps(data.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(f"{kind}\x1f{payload}".encode()).hexdigest()[:24]
    anchor = (
        getattr(data, "run_id", None)
        or getattr(data, "beamtime_id", None)
        or getattr(data, "publication_id", "")
    )
    return f"{kind}:{anchor}:{digest}"


def _now() -> datetime:
    return datetime.now(UTC)


def publication_requested(
    data: PublicationRequestedData, *, source: str, event_id: str | None = None
) -> PublicationRequested:
    """Ask the doi-minter to publish (or, with `draft`, reserve) a DOI; sent with `send`."""
    return PublicationRequested(
        id=event_id or natural_event_id("publication.requested", data),
        source=source,
        subject=data.publication_id,
        data=data,
    )


def publication_amendment_requested(
    publication_id: str,
    changes: PublicationDescription,
    *,
    source: str,
    reason: str | None = None,
    event_id: str | None = None,
) -> PublicationAmendmentRequested:
    """Ask to change a registered publication's metadata (only the fields in `changes`)."""
    data = PublicationAmendmentRequestedData(
        publication_id=publication_id, changes=changes, reason=reason
    )
    return PublicationAmendmentRequested(
        id=event_id or natural_event_id("publication.amendment-requested", data),
        source=source,
        subject=publication_id,
        data=data,
    )


def publication_withdrawal_requested(
    publication_id: str, *, reason: str, source: str, event_id: str | None = None
) -> PublicationWithdrawalRequested:
    """Ask to withdraw a publication: its DOI is hidden, its datasets unpublished."""
    data = PublicationWithdrawalRequestedData(publication_id=publication_id, reason=reason)
    return PublicationWithdrawalRequested(
        id=event_id or natural_event_id("publication.withdrawal-requested", data),
        source=source,
        subject=publication_id,
        data=data,
    )


class EventProducer:
    """Sends contract events to Kafka; use as `async with EventProducer(...) as producer`."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        source: str,
        client_id: str = "scicat-event-producer",
        request_timeout_ms: int = 30_000,
        security: KafkaSecurity | None = None,
    ) -> None:
        if not source:
            raise ValueError("source must name the producer, e.g. `/desy/p08/sardana`")
        self.source = source
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            acks="all",
            request_timeout_ms=request_timeout_ms,
            **client_options(security or KafkaSecurity()),
        )

    async def __aenter__(self) -> EventProducer:
        try:
            await self._producer.start()
        except BaseException:
            await self._producer.stop()
            raise
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._producer.stop()

    async def send(self, event: CloudEvent) -> CloudEvent:
        """Send an already-built event to its contract topic; returns once Kafka has it."""
        topic, key = route(event)
        await self._producer.send_and_wait(
            topic,
            encode(event),
            key=key.encode(),
            headers=[("content-type", CLOUDEVENTS_JSON.encode())],
        )
        return event

    async def run_started(
        self,
        *,
        run_id: str,
        beamtime_id: str,
        instrument: str,
        started_at: datetime | None = None,
        dataset_name: str | None = None,
        source_folder: str | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        event_id: str | None = None,
    ) -> RunStarted:
        data = RunStartedData(
            run_id=run_id,
            beamtime_id=beamtime_id,
            instrument=instrument,
            started_at=started_at or _now(),
            dataset_name=dataset_name,
            source_folder=source_folder,
            description=description,
            metadata=metadata or {},
        )
        event = RunStarted(**self._envelope("run.started", data, event_id, data.started_at))
        await self.send(event)
        return event

    async def file_closed(
        self,
        *,
        run_id: str,
        beamtime_id: str,
        instrument: str,
        path: str,
        size: int,
        closed_at: datetime | None = None,
        checksum: Checksum | None = None,
        metadata: dict[str, Any] | None = None,
        event_id: str | None = None,
    ) -> FileClosed:
        data = FileClosedData(
            run_id=run_id,
            beamtime_id=beamtime_id,
            instrument=instrument,
            path=path,
            size=size,
            closed_at=closed_at or _now(),
            checksum=checksum,
            metadata=metadata or {},
        )
        event = FileClosed(
            **self._envelope("file.closed", data, event_id, data.closed_at), subject=path
        )
        await self.send(event)
        return event

    async def run_stopped(
        self,
        *,
        run_id: str,
        beamtime_id: str,
        instrument: str,
        stopped_at: datetime | None = None,
        status: Literal["success", "abort", "fail"] = "success",
        reason: str | None = None,
        metadata: dict[str, Any] | None = None,
        event_id: str | None = None,
    ) -> RunStopped:
        data = RunStoppedData(
            run_id=run_id,
            beamtime_id=beamtime_id,
            instrument=instrument,
            stopped_at=stopped_at or _now(),
            status=status,
            reason=reason,
            metadata=metadata or {},
        )
        event = RunStopped(**self._envelope("run.stopped", data, event_id, data.stopped_at))
        await self.send(event)
        return event

    async def beamtime_updated(
        self, data: BeamtimeUpdatedData, *, event_id: str | None = None
    ) -> BeamtimeUpdated:
        event = BeamtimeUpdated(**self._envelope("beamtime.updated", data, event_id, _now()))
        await self.send(event)
        return event

    def _envelope(
        self, kind: str, data: Any, event_id: str | None, time: datetime
    ) -> dict[str, Any]:
        return {
            "id": event_id or natural_event_id(kind, data),
            "source": self.source,
            "time": time,
            "data": data,
        }
