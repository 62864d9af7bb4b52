"""The handler with an in-memory store and publisher: decoding, rejection, publish-after-store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from scicat_ingestor.domain import CatalogueEntry
from scicat_ingestor.handlers import AcquisitionHandler, decode_acquisition_event
from scicat_ingestor.store import AppliedEvent, Decide, StoreOutcome
from scicat_schemas.documents import Dataset
from scicat_schemas.runtime.consumer import Rejected

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


class MemoryStore:
    def __init__(self) -> None:
        self.entries: dict[str, CatalogueEntry] = {}
        self.applied: set[str] = set()
        self.down = False

    async def apply(self, event: AppliedEvent, decide: Decide) -> StoreOutcome:
        if self.down:
            raise ConnectionError("MongoDB unreachable")
        current = self.entries.get(event.pid)
        if event.identity in self.applied:
            return StoreOutcome(current and current.dataset, changed=False, already_applied=True)
        proposed = decide(current, None)
        self.applied.add(event.identity)
        if proposed is None:
            return StoreOutcome(current and current.dataset, changed=False, already_applied=False)
        self.entries[event.pid] = proposed
        return StoreOutcome(proposed.dataset, changed=True, already_applied=False)

    async def ping(self) -> None:
        return None


class MemoryEvents:
    def __init__(self) -> None:
        self.stored: list[Dataset] = []

    async def dataset_stored(self, dataset: Dataset) -> None:
        self.stored.append(dataset)

    async def datasets_stored(self, datasets: list[Dataset]) -> None:
        self.stored.extend(datasets)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def events() -> MemoryEvents:
    return MemoryEvents()


@pytest.fixture
def handler(store, events, policy) -> AcquisitionHandler:
    return AcquisitionHandler(store=store, events=events, policy=policy, clock=lambda: NOW)


def record(value: bytes | None) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(
        topic="acquisition.events",
        partition=0,
        offset=7,
        timestamp=0,
        timestamp_type=0,
        key=b"scan_0042",
        value=value,
        checksum=None,
        serialized_key_size=9,
        serialized_value_size=0 if value is None else len(value),
        headers=(),
    )


async def test_stored_dataset_is_published_after_the_store_applied_it(
    handler, store, events, acquisitions
) -> None:
    await handler.handle(record(acquisitions.envelope(acquisitions.file_closed())))

    [published] = events.stored
    assert published == store.entries[acquisitions.pid()].dataset
    assert published.pipelineRevision == 1


async def test_redelivered_event_republishes_the_stored_revision(
    handler, events, acquisitions
) -> None:
    value = acquisitions.envelope(acquisitions.file_closed(), id="evt-1")

    await handler.handle(record(value))
    await handler.handle(record(value))

    assert [d.pipelineRevision for d in events.stored] == [1, 1]


async def test_store_outage_propagates_and_nothing_is_published(
    handler, store, events, acquisitions
) -> None:
    store.down = True

    with pytest.raises(ConnectionError):
        await handler.handle(record(acquisitions.envelope(acquisitions.file_closed())))

    assert events.stored == []


@pytest.mark.parametrize(
    ("value", "error_type", "fragment"),
    [
        (b"{not json", "invalid-json", "not valid"),
        (None, "invalid-json", "no value"),
        (b'{"type": "run.paused", "source": "/x", "data": {}}', "unknown-type", "run.paused"),
        (b'{"source": "/x", "data": {}}', "invalid-event", "type"),
    ],
)
def test_undecodable_records_are_rejected_with_their_reason(value, error_type, fragment) -> None:
    with pytest.raises(Rejected) as rejected:
        decode_acquisition_event(value)

    assert rejected.value.error_type == error_type
    assert fragment in rejected.value.reason


def test_file_closed_without_size_is_rejected_naming_the_field(acquisitions) -> None:
    value = acquisitions.envelope(acquisitions.file_closed()).replace(b'"size":100,', b"")

    with pytest.raises(Rejected) as rejected:
        decode_acquisition_event(value)

    assert rejected.value.error_type == "invalid-event"
    assert "file.closed.data.size: Field required" in rejected.value.reason


async def test_inapplicable_event_is_rejected_and_changes_nothing(
    handler, store, events, acquisitions
) -> None:
    value = acquisitions.envelope(acquisitions.file_closed(path="relative/a.h5"), id="evt-9")

    with pytest.raises(Rejected) as rejected:
        await handler.handle(record(value))

    assert rejected.value.error_type == "invalid-event"
    assert "'evt-9'" in rejected.value.reason
    assert "not absolute" in rejected.value.reason
    assert store.entries == {}
    assert events.stored == []
