"""The contract topics in batches: many acquisition events per MongoDB transaction.

`ReliableConsumer.subscribe_batch` hands over up to `batch_max_records` records and commits
their offsets when `handle_batch` returns, so it returns only once every record's effect is
durable: applied in the catalogue and `dataset.stored` published. A record no retry can fix is
reported as its own `Rejected` (only it is dead-lettered); any other failure propagates and the
whole batch is retried (markers make the retry apply nothing twice).

Records are taken in order. Runs of consecutive acquisition events go to the store together
(`batch_store`); `beamtime.updated` (it rewrites every dataset of a beamtime) is applied alone,
in its place, by `AcquisitionHandler`. With measurement grouping on, the measurement of each
event's run is read once per transaction, before it, and a `run.started` naming a measurement
puts its run there for the events after it in the same transaction. Should that start be
refused, those events belong to no measurement after all (`UngroupedRun`): the events are
applied again with each such start ending its transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog
from aiokafka import ConsumerRecord

from scicat_ingestor.applied_events import copy_recognition, reported_file
from scicat_ingestor.batch_store import BatchDecide, BatchItem, BatchOutcome
from scicat_ingestor.domain import AcquisitionData, CatalogueEntry, InvalidAcquisition, apply_event
from scicat_ingestor.file_reading import UNREAD, FileReading, Unread
from scicat_ingestor.handlers import (
    AcquisitionEvent,
    AcquisitionHandler,
    ContractEvent,
    decode_contract_record,
    grouped_run,
)
from scicat_ingestor.measurements import chosen_measurement, names_measurement
from scicat_ingestor.quantities import MetadataIssue
from scicat_ingestor.store import AppliedEvent, StoredContext, StoreOutcome
from scicat_ingestor.store_values import Delivery, UngroupedRun
from scicat_ingestor.stored_documents import CorruptStoredDocument
from scicat_schemas.documents import Dataset
from scicat_schemas.events import BeamtimeUpdated, FileClosed
from scicat_schemas.runtime.consumer import DEFERRED, Deferred, Rejected

log = structlog.get_logger("scicat.ingestor")

Outcomes = list[Rejected | Deferred | None]
Pending = tuple[int, AcquisitionEvent, "FileReading | None"]
"""An acquisition event waiting for its transaction: its record's position, it, its file."""


class BatchEvents(Protocol):
    async def datasets_stored(self, datasets: Sequence[Dataset]) -> None:
        """Publish `dataset.stored` for each, in order; return once all are durable."""
        ...


class BatchStore(Protocol):
    async def apply_many(self, items: Sequence[BatchItem]) -> BatchOutcome:
        """Apply the items in order in one transaction; see `batch_store.apply_batch`."""
        ...

    async def measurements_of(self, runs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The recorded measurement of each `(beamtime_id, run_id)` that has one."""
        ...


@dataclass
class BatchIngestor:
    """`handle_batch` for `acquisition.events` + `proposals.events` (one consumer group member)."""

    handler: AcquisitionHandler
    store: BatchStore
    events: BatchEvents
    file_read_concurrency: int = 8
    time_budget: float | None = None
    """Seconds a batch may spend reading its files before the rest is handed back (`DEFERRED`)
    to the next batch; `None`: no limit."""

    async def handle_batch(self, records: Sequence[ConsumerRecord[Any, Any]]) -> Outcomes:
        outcomes: Outcomes = [None] * len(records)
        entries: list[tuple[int, ContractEvent]] = []
        for position, record in enumerate(records):
            try:
                entries.append((position, decode_contract_record(record)))
            except Rejected as rejected:
                outcomes[position] = rejected
        await self.apply_in_order(entries, outcomes, [Delivery.of(r) for r in records])
        return outcomes

    async def apply_in_order(
        self,
        entries: Sequence[tuple[int, ContractEvent]],
        outcomes: Outcomes,
        deliveries: Sequence[Delivery] | None = None,
    ) -> None:
        """Apply decoded events in order; `entries` pair each with its record's position.
        `deliveries`: where each record was read, by position (`None`: not from Kafka, e.g. the
        back-fill command); with `DEDUPLICATION=offsets` the store records events by them.

        A record may have several events (native messages); its outcome is the first rejection
        of any of them. Runs of consecutive acquisition events share a transaction; the others
        are applied alone, in their place (see the module docstring).
        """
        readings = await self._read_files(entries)
        cut = _defer_from_first_unread(entries, readings, outcomes)
        pending: list[Pending] = []
        for (position, event), reading in zip(entries[:cut], readings[:cut], strict=True):
            if isinstance(reading, Unread):  # never: the cut is at the first one
                raise AssertionError("an unread file before the cut")
            if not isinstance(event, BeamtimeUpdated):
                pending.append((position, event, reading))
                continue
            await self._apply_together(pending, outcomes, deliveries)
            pending = []
            try:
                await self.handler.handle_event(event, reading=reading)
            except Rejected as rejected:
                outcomes[position] = outcomes[position] or rejected
        await self._apply_together(pending, outcomes, deliveries)

    async def _apply_together(
        self, pending: list[Pending], outcomes: Outcomes, deliveries: Sequence[Delivery] | None
    ) -> None:
        if not pending:
            return
        try:
            await self._apply_transaction(pending, outcomes, deliveries)
        except UngroupedRun:
            key = self.handler.policy.measurement_key
            assert key is not None  # only grouped runs are recorded
            log.info("a start naming a measurement was refused: transactions end at starts")
            for segment in _ending_at_starts(pending, key):
                await self._apply_transaction(segment, outcomes, deliveries)

    async def _apply_transaction(
        self, pending: list[Pending], outcomes: Outcomes, deliveries: Sequence[Delivery] | None
    ) -> None:
        now = self.handler.clock()
        policy = self.handler.policy
        datas = [event.data if reading is None else reading.data for _, event, reading in pending]
        key = policy.measurement_key
        recorded = (
            {}
            if key is None
            else await self.store.measurements_of([(d.beamtime_id, d.run_id) for d in datas])
        )
        items = []
        for (position, event, reading), data in zip(pending, datas, strict=True):
            run = (data.beamtime_id, data.run_id)
            measurement = None if key is None else chosen_measurement(data, key, recorded.get(run))
            if measurement is not None:  # a start records its run for the events after it
                recorded.setdefault(run, measurement)
            items.append(
                BatchItem(
                    AppliedEvent(
                        identity=event.identity,
                        type=event.type,
                        pid=policy.dataset_pid(data, measurement),
                        applied_at=now,
                        beamtime_id=data.beamtime_id,
                        run=grouped_run(data, measurement),
                        delivery=None if deliveries is None else deliveries[position],
                        copies=copy_recognition(
                            data, grouped=measurement is not None, groupable=key is not None
                        ),
                        file=reported_file(data),
                    ),
                    self._decide(
                        data, [] if reading is None else reading.issues, now, event.identity
                    ),
                )
            )
        result = await self.store.apply_many(items)
        for (position, event, _), item, outcome in zip(
            pending, items, result.outcomes, strict=True
        ):
            if outcomes[position] is not None:
                continue
            if isinstance(outcome, InvalidAcquisition):
                outcomes[position] = Rejected(
                    f"{event.type} {event.id!r} from {event.source!r} for dataset "
                    f"{item.event.pid!r} cannot be applied: {outcome}",
                    error_type="invalid-event",
                )
            elif isinstance(outcome, CorruptStoredDocument):
                outcomes[position] = Rejected(
                    f"{event.type} {event.id!r} cannot be applied because a stored document of "
                    f"dataset {item.event.pid!r} is damaged: {outcome}; repair it and replay "
                    "this dead letter",
                    error_type="invalid-stored-document",
                )
        await self.events.datasets_stored(result.published)
        log.info(
            "acquisition events handled in one transaction",
            events=len(items),
            rejected=sum(not isinstance(o, StoreOutcome) for o in result.outcomes),
            datasets=len(result.published),
        )

    def _decide(
        self, data: AcquisitionData, issues: list[MetadataIssue], now: datetime, identity: str
    ) -> BatchDecide:
        policy = self.handler.policy

        def decide(current: CatalogueEntry | None, context: StoredContext) -> CatalogueEntry | None:
            return apply_event(
                data,
                current,
                policy=policy,
                now=now,
                beamtime=context.beamtime,
                issues=issues,
                measurement=context.measurement,
                owned=context.owned,
                report=identity,
            )

        return decide

    async def _read_files(
        self, entries: Sequence[tuple[int, ContractEvent]]
    ) -> list[FileReading | Unread | None]:
        """The files of the batch's `file.closed` events, read before any transaction,
        `file_read_concurrency` at once, within the time budget: per entry its reading, `None`
        when it names no file, `UNREAD` when the budget ran out first."""
        closed = [event.data for _, event in entries if isinstance(event, FileClosed)]
        files = self.handler.files
        deadline = None if self.time_budget is None else files.clock() + self.time_budget
        read = await files.read_many(
            closed, concurrency=self.file_read_concurrency, deadline=deadline
        )
        readings = iter(read)
        return [next(readings) if isinstance(event, FileClosed) else None for _, event in entries]


def _ending_at_starts(pending: list[Pending], key: str) -> list[list[Pending]]:
    """`pending` cut after each start naming a measurement."""
    segments: list[list[Pending]] = [[]]
    for entry in pending:
        segments[-1].append(entry)
        if names_measurement(entry[1].data, key):
            segments.append([])
    return [segment for segment in segments if segment]


def _defer_from_first_unread(
    entries: Sequence[tuple[int, ContractEvent]],
    readings: Sequence[FileReading | Unread | None],
    outcomes: Outcomes,
) -> int:
    """Defer the record of the first unread file and every record after it (in all partitions:
    the batch's order keeps each partition's); how many entries come before it."""
    unread = next((n for n, reading in enumerate(readings) if reading is UNREAD), None)
    if unread is None:
        return len(entries)
    first_deferred = entries[unread][0]
    outcomes[first_deferred:] = [DEFERRED] * (len(outcomes) - first_deferred)
    return next(n for n, (position, _) in enumerate(entries) if position == first_deferred)
