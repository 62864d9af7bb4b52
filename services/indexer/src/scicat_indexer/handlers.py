"""`catalogue.datasets` → the dataset index, a batch at a time through OpenSearch's `_bulk`.

A batch is decoded record by record (a record that is not a valid event is rejected alone),
enriched from the catalogue (file names and proposals, two MongoDB queries per request), then sent
as `_bulk` requests, pipelined. OpenSearch answers per item: a 400 rejects that record only
(dead-lettered with OpenSearch's error), a version conflict means a newer revision is already
indexed (done), and anything else (429, 5xx, MongoDB or OpenSearch down) raises, so the consumer
retries the whole batch. That is safe: the revision is the OpenSearch version, so rewriting an
item changes nothing and an older one is refused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from aiokafka import ConsumerRecord
from pydantic import ValidationError

from scicat_indexer.catalogue import Catalogue
from scicat_indexer.domain import indexed_dataset
from scicat_indexer.mapping import METADATA_PAIRS
from scicat_indexer.store import BulkWrite, DatasetIndex, DocumentRefused
from scicat_schemas.events import DATASET_EVENT, DatasetDeleted, DatasetStored
from scicat_schemas.runtime.consumer import (
    DEFERRED,
    Deferred,
    Rejected,
    rejected_from_validation,
)

log = structlog.get_logger("scicat.indexer")

BatchOutcomes = list[Rejected | Deferred | None]


def dataset_batch_handler(
    index: DatasetIndex,
    catalogue: Catalogue,
    *,
    bulk_max_records: int = 500,
    time_budget: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[Sequence[ConsumerRecord[Any, Any]]], Awaitable[BatchOutcomes]]:
    """The `catalogue.datasets` batch handler writing to `index`, reading `catalogue`.

    A batch goes out as `_bulk` requests of up to `bulk_max_records` items, pipelined: while
    OpenSearch indexes one request, the next one's documents are read from the catalogue and
    built here, so neither side waits for the other. The requests are sent one after the other,
    in record order, and the handler returns only when every one is answered. Once
    `time_budget` seconds have passed (a slow cluster), no further request is started: the rest
    of the batch is `DEFERRED` to the next one (the first request always goes out).
    """

    async def index_dataset_events(records: Sequence[ConsumerRecord[Any, Any]]) -> BatchOutcomes:
        outcomes: BatchOutcomes = [None] * len(records)
        events: list[tuple[int, DatasetStored | DatasetDeleted]] = []
        for position, record in enumerate(records):
            try:
                events.append((position, decode(record)))
            except Rejected as rejected:
                outcomes[position] = rejected
        in_flight: asyncio.Task[None] | None = None
        deadline = None if time_budget is None else clock() + time_budget
        try:
            for start in range(0, len(events), bulk_max_records):
                chunk = events[start : start + bulk_max_records]
                if start > 0 and deadline is not None and clock() >= deadline:
                    first = chunk[0][0]
                    outcomes[first:] = [DEFERRED] * (len(outcomes) - first)
                    break
                writes = await _writes([event for _, event in chunk], catalogue)
                if in_flight is not None:
                    await in_flight
                in_flight = asyncio.create_task(_send(index, chunk, writes, outcomes))
                await asyncio.sleep(0)  # the request goes out before the next one is built
            if in_flight is not None:
                await in_flight
        finally:
            if in_flight is not None and not in_flight.done():
                in_flight.cancel()
                await asyncio.gather(in_flight, return_exceptions=True)
        return outcomes

    return index_dataset_events


async def _writes(
    events: list[DatasetStored | DatasetDeleted], catalogue: Catalogue
) -> list[BulkWrite]:
    """The `_bulk` items of `events`, enriched from the catalogue (two MongoDB queries)."""
    stored = [e.data.dataset for e in events if isinstance(e, DatasetStored)]
    contexts = await catalogue.contexts(stored) if stored else {}
    return [_write(event, contexts) for event in events]


async def _send(
    index: DatasetIndex,
    events: list[tuple[int, DatasetStored | DatasetDeleted]],
    writes: list[BulkWrite],
    outcomes: BatchOutcomes,
) -> None:
    """One `_bulk` request; a refused item's record gets its `Rejected` in `outcomes`."""
    results = await index.bulk(writes)
    for (position, event), write, result in zip(events, writes, results, strict=True):
        if isinstance(result, DocumentRefused):
            outcomes[position] = Rejected(
                f"{event.type} event {event.id!r} from {event.source!r}: {result.reason}",
                error_type="index-refused",
            )
        log.info(
            "dataset indexed" if write.source is not None else "dataset removed from index",
            pid=write.pid,
            revision=write.revision,
            outcome=str(result) if not isinstance(result, DocumentRefused) else "refused",
        )


def _write(event: DatasetStored | DatasetDeleted, contexts: dict[str, Any]) -> BulkWrite:
    if isinstance(event, DatasetDeleted):
        return BulkWrite(pid=event.data.pid, revision=event.data.revision, source=None)
    dataset = indexed_dataset(event.data.dataset, contexts.get(event.data.dataset.pid))
    if dataset.metadata_truncated or dataset.files_truncated:
        log.warning(
            "dataset only partly indexed; it is complete in the stored dataset",
            pid=dataset.pid,
            indexed_pairs=len(dataset.source[METADATA_PAIRS]),
            files_truncated=dataset.files_truncated,
        )
    return BulkWrite(pid=dataset.pid, revision=dataset.revision, source=dataset.source)


def decode(record: ConsumerRecord[Any, Any]) -> DatasetStored | DatasetDeleted:
    """The event in the record, or `Rejected` saying what is wrong with it."""
    try:
        return DATASET_EVENT.validate_json(record.value or b"")
    except ValidationError as error:
        rejected = rejected_from_validation(error, what=f"{record.topic} event")
        if any(e["type"] == "union_tag_invalid" for e in error.errors()):
            rejected.error_type = "unknown-type"
        raise rejected from error
