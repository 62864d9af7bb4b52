"""The handler against an in-memory index: which outcomes ack, which dead-letter, which retry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from scicat_indexer.domain import IndexedDataset
from scicat_indexer.handlers import dataset_event_handler
from scicat_indexer.store import DeleteOutcome, DocumentRefused, PutOutcome, SearchPage
from scicat_schemas.documents import Dataset
from scicat_schemas.runtime.consumer import Rejected


class InMemoryIndex:
    """Keeps the newest revision per pid, like OpenSearch external versioning."""

    def __init__(self, *, refuse: str | None = None, down: bool = False) -> None:
        self.documents: dict[str, IndexedDataset] = {}
        self.refuse = refuse
        self.down = down

    async def put(self, dataset: IndexedDataset) -> PutOutcome:
        if self.down:
            raise ConnectionError("OpenSearch unreachable")
        if self.refuse:
            raise DocumentRefused(self.refuse)
        current = self.documents.get(dataset.pid)
        if current and current.revision > dataset.revision:
            return PutOutcome.STALE
        self.documents[dataset.pid] = dataset
        return PutOutcome.INDEXED

    async def delete(self, *, pid: str, revision: int) -> DeleteOutcome:
        return DeleteOutcome.DELETED if self.documents.pop(pid, None) else DeleteOutcome.ABSENT

    async def get(self, pid: str) -> dict[str, Any] | None:
        return self.documents[pid].source if pid in self.documents else None

    async def search(self, body: dict[str, Any]) -> SearchPage:
        return SearchPage(total=0, items=[])

    async def ready(self) -> bool:
        return True


def record(value: bytes) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(
        topic="catalogue.datasets",
        partition=0,
        offset=0,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(value),
        headers=(),
    )


async def test_stale_revision_is_acknowledged_without_overwriting(
    make_dataset: Callable[..., Dataset], stored_event: Callable[..., bytes]
) -> None:
    index = InMemoryIndex()
    handle = dataset_event_handler(index)
    await handle(record(stored_event(make_dataset(pipelineRevision=5, datasetName="new"))))
    await handle(record(stored_event(make_dataset(pipelineRevision=4, datasetName="old"))))
    [stored] = index.documents.values()
    assert (stored.revision, stored.source["datasetName"]) == (5, "new")


async def test_document_the_index_refuses_is_rejected_with_the_index_reason(
    make_dataset: Callable[..., Dataset], stored_event: Callable[..., bytes]
) -> None:
    handle = dataset_event_handler(InMemoryIndex(refuse="mapper_parsing_exception: bad date"))
    with pytest.raises(Rejected) as rejected:
        await handle(record(stored_event(make_dataset())))
    assert rejected.value.error_type == "index-refused"
    assert "mapper_parsing_exception: bad date" in rejected.value.reason
    assert "dataset.stored" in rejected.value.reason


async def test_index_outage_propagates_so_the_consumer_retries(
    make_dataset: Callable[..., Dataset], stored_event: Callable[..., bytes]
) -> None:
    handle = dataset_event_handler(InMemoryIndex(down=True))
    with pytest.raises(ConnectionError):
        await handle(record(stored_event(make_dataset())))


@pytest.mark.parametrize(
    ("value", "error_type", "says"),
    [
        (b"{not json", "invalid-json", "not valid"),
        (b'{"type": "dataset.renamed", "source": "/x", "data": {}}', "unknown-type", "renamed"),
        (b'{"type": "dataset.stored", "source": "/x", "data": {}}', "invalid-event", "dataset"),
        (b"", "invalid-json", "not valid"),
    ],
)
async def test_undecodable_events_are_rejected_with_a_reason(
    value: bytes, error_type: str, says: str
) -> None:
    handle = dataset_event_handler(InMemoryIndex())
    with pytest.raises(Rejected) as rejected:
        await handle(record(value))
    assert rejected.value.error_type == error_type
    assert says in rejected.value.reason
    assert rejected.value.reason.startswith("catalogue.datasets event is not valid")


async def test_deleted_event_removes_the_dataset(
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
    deleted_event: Callable[..., bytes],
) -> None:
    index = InMemoryIndex()
    handle = dataset_event_handler(index)
    await handle(record(stored_event(make_dataset())))
    await handle(record(deleted_event("local/11012345/scan_001", 2)))
    assert index.documents == {}
