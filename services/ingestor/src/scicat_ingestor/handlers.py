"""`acquisition.events` and `proposals.events` → catalogue: decode, apply once, publish, return.

The `ReliableConsumer` commits the offset when `handle` returns, so `handle` returns only after
the transaction committed and `dataset.stored` was published. Input no retry can fix raises
`Rejected` (dead letter); store and broker errors propagate, and the consumer retries the same
offset after a back-off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import ConsumerRecord
from pydantic import ValidationError

from scicat_ingestor.applied_events import reported_file
from scicat_ingestor.beamtimes import BeamtimeFacts, beamtime_proposals
from scicat_ingestor.domain import (
    AcquisitionData,
    InvalidAcquisition,
    apply_event,
    complete_with_beamtime,
)
from scicat_ingestor.file_reading import FileReader, FileReading
from scicat_ingestor.ingest_policy import IngestPolicy
from scicat_ingestor.measurements import chosen_measurement
from scicat_ingestor.publisher import DatasetEvents
from scicat_ingestor.quantities import MetadataIssue
from scicat_ingestor.store import AppliedEvent, CatalogueStore, GroupedRun
from scicat_ingestor.stored_documents import CorruptStoredDocument
from scicat_schemas.events import (
    ACQUISITION_EVENT,
    AcquisitionRef,
    BeamtimeUpdated,
    FileClosed,
    RunStarted,
    RunStartedData,
    RunStopped,
)
from scicat_schemas.runtime.consumer import Rejected, rejected_from_validation
from scicat_schemas.topics import PROPOSALS_EVENTS

log = structlog.get_logger("scicat.ingestor")

AcquisitionEvent = RunStarted | FileClosed | RunStopped
ContractEvent = AcquisitionEvent | BeamtimeUpdated


def decode_acquisition_event(value: bytes | None) -> AcquisitionEvent:
    """The CloudEvent in a record's value, or `Rejected` naming what is wrong with it."""
    if value is None:
        raise Rejected(
            "the record has no value (a tombstone?); acquisition events are CloudEvents in "
            "structured JSON mode",
            error_type="invalid-json",
        )
    try:
        return ACQUISITION_EVENT.validate_json(value)
    except ValidationError as error:
        unknown = [e for e in error.errors() if e["type"] == "union_tag_invalid"]
        if unknown:
            raise Rejected(
                f"acquisition event has an unknown type: {unknown[0]['msg']}",
                error_type="unknown-type",
            ) from error
        raise rejected_from_validation(error, what="acquisition event") from error


def decode_beamtime_event(value: bytes | None) -> BeamtimeUpdated:
    """The `beamtime.updated` CloudEvent in a record's value, or `Rejected` naming the problem."""
    if value is None:
        raise Rejected(
            "the record has no value (a tombstone?); proposal events are CloudEvents in "
            "structured JSON mode",
            error_type="invalid-json",
        )
    try:
        return BeamtimeUpdated.model_validate_json(value)
    except ValidationError as error:
        if any(e["loc"] == ("type",) for e in error.errors()):
            raise Rejected(
                "proposal event has an unknown type; proposals.events carries beamtime.updated",
                error_type="unknown-type",
            ) from error
        raise rejected_from_validation(error, what="proposal event") from error


def decode_contract_record(record: ConsumerRecord[Any, Any]) -> ContractEvent:
    """The event of a record of `acquisition.events` or `proposals.events`, by its topic."""
    if record.topic == PROPOSALS_EVENTS:
        return decode_beamtime_event(record.value)
    return decode_acquisition_event(record.value)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def grouped_run(data: AcquisitionData, measurement: str | None) -> GroupedRun | None:
    """The event's run as its measurement records it, when it is grouped into one."""
    if measurement is None:
        return None
    return GroupedRun(
        beamtime_id=data.beamtime_id,
        run_id=data.run_id,
        measurement=measurement,
        metadata=data.metadata,
        started_at=data.started_at if isinstance(data, RunStartedData) else None,
    )


@dataclass
class AcquisitionHandler:
    """Both topics' handlers; `handle_event` is the one path every producer's events take."""

    store: CatalogueStore
    events: DatasetEvents
    policy: IngestPolicy
    files: FileReader = field(default_factory=lambda: FileReader(False, []))
    clock: Callable[[], datetime] = field(default=_utc_now)

    async def handle(self, record: ConsumerRecord[Any, Any]) -> None:
        """A record of `acquisition.events` or `proposals.events`, by its topic.

        One subscriber for both topics means one consumer in the group, not two: every member
        joining makes the whole group rebalance.
        """
        await self.handle_event(decode_contract_record(record))

    async def handle_event(
        self, event: ContractEvent, *, reading: FileReading | None = None
    ) -> None:
        """Apply an already-decoded event, end to end; returns once stored and published.

        The `ingest` command and the batch path's per-event records enter here; `reading`: the
        `file.closed` event's file as already read (else it is read here).
        """
        if isinstance(event, BeamtimeUpdated):
            await self._beamtime_updated(event)
        else:
            await self._acquisition(event, reading)

    async def _acquisition(self, event: AcquisitionEvent, reading: FileReading | None) -> None:
        data = event.data
        issues: list[MetadataIssue] = []
        if isinstance(event, FileClosed):
            reading = reading or await self.files.read(event.data)
            data, issues = reading.data, reading.issues
        measurement = await self._measurement(data)
        pid = self.policy.dataset_pid(data, measurement)
        now = self.clock()
        grouped = grouped_run(data, measurement)
        with structlog.contextvars.bound_contextvars(
            event_id=event.id, event_source=event.source, event_type=event.type, pid=pid
        ):
            try:
                outcome = await self.store.apply(
                    AppliedEvent(
                        identity=event.identity,
                        type=event.type,
                        pid=pid,
                        applied_at=now,
                        beamtime_id=data.beamtime_id,
                        run=grouped,
                        file=reported_file(data),
                    ),
                    lambda current, context: apply_event(
                        data,
                        current,
                        policy=self.policy,
                        now=now,
                        beamtime=context.beamtime if context else None,
                        issues=issues,
                        measurement=context.measurement if context else None,
                        report=event.identity,
                    ),
                )
            except InvalidAcquisition as error:
                raise Rejected(
                    f"{event.type} {event.id!r} from {event.source!r} for dataset {pid!r} "
                    f"cannot be applied: {error}",
                    error_type="invalid-event",
                ) from error
            except CorruptStoredDocument as error:
                raise Rejected(
                    f"{event.type} {event.id!r} cannot be applied because the stored dataset "
                    f"{pid!r} is damaged: {error}; repair it and replay this dead letter",
                    error_type="invalid-stored-document",
                ) from error
            if outcome.dataset is not None:
                await self.events.dataset_stored(outcome.dataset)
            log.info(
                "acquisition event handled",
                changed=outcome.changed,
                already_applied=outcome.already_applied,
                revision=None if outcome.dataset is None else outcome.dataset.pipelineRevision,
            )

    async def _measurement(self, data: AcquisitionData) -> str | None:
        """The measurement a run belongs to when grouping is on: named by its start, recorded."""
        key = self.policy.measurement_key
        if key is None:
            return None
        recorded = await self.store.measurement_of(data.beamtime_id, data.run_id)
        return chosen_measurement(data, key, recorded)

    async def _beamtime_updated(self, event: BeamtimeUpdated) -> None:
        data = event.data
        facts = BeamtimeFacts.from_event(data)
        ref = AcquisitionRef(run_id="-", beamtime_id=data.beamtime_id, instrument=data.beamline)
        proposals = beamtime_proposals(
            data,
            owner_group=self.policy.owner_group(ref, data.beamline),
            access_groups=self.policy.access_groups(ref, data.beamline),
        )
        now = self.clock()
        with structlog.contextvars.bound_contextvars(
            event_id=event.id, event_source=event.source, event_type=event.type
        ):
            try:
                outcome = await self.store.apply_beamtime(
                    AppliedEvent(
                        identity=event.identity,
                        type=event.type,
                        pid=f"beamtime:{data.beamtime_id}",
                        applied_at=now,
                        beamtime_id=data.beamtime_id,
                    ),
                    proposals,
                    lambda current: complete_with_beamtime(
                        current, facts, policy=self.policy, now=now
                    ),
                    self.events.datasets_stored,
                )
            except (InvalidAcquisition, CorruptStoredDocument) as error:
                raise Rejected(
                    f"beamtime.updated {event.id!r} for beamtime {data.beamtime_id!r} cannot be "
                    f"applied: {error}; repair the stored document and replay this dead letter",
                    error_type="invalid-stored-document",
                ) from error
            log.info(
                "beamtime event handled",
                changed=outcome.changed,
                already_applied=outcome.already_applied,
                announced=outcome.announced,
                damaged=len(outcome.damaged),
            )
            if outcome.damaged:
                raise Rejected(
                    f"beamtime.updated {event.id!r} for beamtime {data.beamtime_id!r} completed "
                    f"every dataset but {len(outcome.damaged)} whose stored document is damaged: "
                    f"{'; '.join(outcome.damaged[:5])}"
                    f"{' ...' if len(outcome.damaged) > 5 else ''}; repair them and replay this "
                    "dead letter",
                    error_type="invalid-stored-document",
                )
