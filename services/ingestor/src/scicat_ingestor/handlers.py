"""`acquisition.events` → catalogue: decode, apply once, publish, and only then return.

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

from scicat_ingestor.domain import IngestPolicy, InvalidAcquisition, apply_event
from scicat_ingestor.publisher import DatasetEvents
from scicat_ingestor.store import AppliedEvent, CatalogueStore, CorruptStoredDocument
from scicat_schemas.events import ACQUISITION_EVENT, FileClosed, RunStarted, RunStopped
from scicat_schemas.runtime.consumer import Rejected, rejected_from_validation

log = structlog.get_logger("scicat.ingestor")

AcquisitionEvent = RunStarted | FileClosed | RunStopped


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


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class AcquisitionHandler:
    store: CatalogueStore
    events: DatasetEvents
    policy: IngestPolicy
    clock: Callable[[], datetime] = field(default=_utc_now)

    async def handle(self, record: ConsumerRecord[Any, Any]) -> None:
        await self.handle_event(decode_acquisition_event(record.value))

    async def handle_event(self, event: AcquisitionEvent) -> None:
        """Apply an already-decoded event; native-topic adapters (`native.py`) enter here."""
        pid = self.policy.dataset_pid(event.data)
        now = self.clock()
        with structlog.contextvars.bound_contextvars(
            event_id=event.id, event_source=event.source, event_type=event.type, pid=pid
        ):
            try:
                outcome = await self.store.apply(
                    AppliedEvent(identity=event.identity, type=event.type, pid=pid, applied_at=now),
                    lambda current: apply_event(event.data, current, policy=self.policy, now=now),
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
