"""`catalogue.datasets` → the dataset index.

The handler returns only once OpenSearch has accepted (or deliberately ignored) the change, so
the consumer commits the offset only then. A redelivery is harmless: the revision is the
OpenSearch version, so the same event rewrites the same content and an older one is refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiokafka import ConsumerRecord
from pydantic import ValidationError

from scicat_indexer.domain import indexed_dataset
from scicat_indexer.mapping import METADATA_PAIRS
from scicat_indexer.store import DatasetIndex, DocumentRefused
from scicat_schemas.events import DATASET_EVENT, DatasetDeleted, DatasetStored
from scicat_schemas.runtime.consumer import Rejected, rejected_from_validation

log = structlog.get_logger("scicat.indexer")


def dataset_event_handler(
    index: DatasetIndex,
) -> Callable[[ConsumerRecord[Any, Any]], Awaitable[None]]:
    """The `catalogue.datasets` handler writing to `index`."""

    async def index_dataset_event(record: ConsumerRecord[Any, Any]) -> None:
        event = decode(record)
        with structlog.contextvars.bound_contextvars(
            event_id=event.id, event_source=event.source, event_type=event.type
        ):
            try:
                if isinstance(event, DatasetStored):
                    await _stored(index, event)
                else:
                    await _deleted(index, event)
            except DocumentRefused as refused:
                raise Rejected(
                    f"{event.type} event {event.id!r} from {event.source!r}: {refused.reason}",
                    error_type="index-refused",
                ) from refused

    return index_dataset_event


def decode(record: ConsumerRecord[Any, Any]) -> DatasetStored | DatasetDeleted:
    """The event in the record, or `Rejected` saying what is wrong with it."""
    try:
        return DATASET_EVENT.validate_json(record.value or b"")
    except ValidationError as error:
        rejected = rejected_from_validation(error, what=f"{record.topic} event")
        if any(e["type"] == "union_tag_invalid" for e in error.errors()):
            rejected.error_type = "unknown-type"
        raise rejected from error


async def _stored(index: DatasetIndex, event: DatasetStored) -> None:
    dataset = indexed_dataset(event.data.dataset)
    outcome = await index.put(dataset)
    if dataset.metadata_truncated:
        log.warning(
            "scientific metadata only partly indexed; it is complete in the stored dataset",
            pid=dataset.pid,
            indexed_pairs=len(dataset.source[METADATA_PAIRS]),
        )
    log.info("dataset indexed", pid=dataset.pid, revision=dataset.revision, outcome=outcome)


async def _deleted(index: DatasetIndex, event: DatasetDeleted) -> None:
    outcome = await index.delete(pid=event.data.pid, revision=event.data.revision)
    log.info(
        "dataset removed from index",
        pid=event.data.pid,
        revision=event.data.revision,
        outcome=outcome,
    )
