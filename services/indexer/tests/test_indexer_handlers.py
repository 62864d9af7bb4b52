"""The batch handler against in-memory stores: per-record outcomes, enrichment, retries."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from scicat_indexer.domain import CatalogueContext
from scicat_indexer.handlers import dataset_batch_handler
from scicat_indexer.store import (
    BulkResult,
    BulkWrite,
    DeleteOutcome,
    DocumentRefused,
    PutOutcome,
)
from scicat_schemas.documents import Dataset
from scicat_schemas.runtime.consumer import DEFERRED, Rejected


class InMemoryIndex:
    """Keeps the newest revision per pid, like OpenSearch external versioning."""

    def __init__(self, *, refuse: dict[str, str] | None = None, down: bool = False) -> None:
        self.documents: dict[str, BulkWrite] = {}
        self.refuse = refuse or {}
        self.down = down
        self.requests = 0

    async def bulk(self, writes: Sequence[BulkWrite]) -> list[BulkResult]:
        if self.down:
            raise ConnectionError("OpenSearch unreachable")
        self.requests += 1
        return [self._apply(write) for write in writes]

    def _apply(self, write: BulkWrite) -> BulkResult:
        if write.pid in self.refuse:
            return DocumentRefused(self.refuse[write.pid])
        current = self.documents.get(write.pid)
        if current and current.revision > write.revision:
            return PutOutcome.STALE if write.source is not None else DeleteOutcome.STALE
        if write.source is None:
            return (
                DeleteOutcome.DELETED
                if self.documents.pop(write.pid, None)
                else (DeleteOutcome.ABSENT)
            )
        self.documents[write.pid] = write
        return PutOutcome.INDEXED


class InMemoryCatalogue:
    def __init__(self, contexts: dict[str, CatalogueContext] | None = None) -> None:
        self.known = contexts or {}
        self.down = False

    async def contexts(self, datasets: Sequence[Dataset]) -> dict[str, CatalogueContext]:
        if self.down:
            raise ConnectionError("MongoDB unreachable")
        return {d.pid: self.known[d.pid] for d in datasets if d.pid in self.known}

    async def ping(self) -> bool:
        return True


def record(value: bytes, offset: int = 0) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(
        topic="catalogue.datasets",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(value),
        headers=(),
    )


def batch(*values: bytes) -> list[ConsumerRecord[Any, Any]]:
    return [record(value, offset) for offset, value in enumerate(values)]


async def test_one_bulk_request_per_batch_and_newest_revision_wins(
    make_dataset: Callable[..., Dataset], stored_event: Callable[..., bytes]
) -> None:
    index = InMemoryIndex()
    handle = dataset_batch_handler(index, InMemoryCatalogue())
    outcomes = await handle(
        batch(
            stored_event(make_dataset(pipelineRevision=5, datasetName="new")),
            stored_event(make_dataset(pipelineRevision=4, datasetName="old")),
        )
    )
    assert outcomes == [None, None]
    assert index.requests == 1
    [stored] = index.documents.values()
    assert (stored.revision, stored.source and stored.source["datasetName"]) == (5, "new")


async def test_refused_document_is_rejected_alone_with_the_index_reason(
    make_dataset: Callable[..., Dataset], stored_event: Callable[..., bytes]
) -> None:
    bad = make_dataset("bad")
    index = InMemoryIndex(refuse={bad.pid: "mapper_parsing_exception: bad date"})
    handle = dataset_batch_handler(index, InMemoryCatalogue())
    first, refused, last = await handle(
        batch(
            stored_event(make_dataset("scan_001")),
            stored_event(bad),
            stored_event(make_dataset("scan_003")),
        )
    )
    assert first is None and last is None
    assert isinstance(refused, Rejected)
    assert refused.error_type == "index-refused"
    assert "mapper_parsing_exception: bad date" in refused.reason
    assert "dataset.stored" in refused.reason
    assert set(index.documents) == {"local/11012345/scan_001", "local/11012345/scan_003"}


async def test_outage_of_either_store_propagates_so_the_whole_batch_is_retried(
    make_dataset: Callable[..., Dataset], stored_event: Callable[..., bytes]
) -> None:
    with pytest.raises(ConnectionError):
        await dataset_batch_handler(InMemoryIndex(down=True), InMemoryCatalogue())(
            batch(stored_event(make_dataset()))
        )
    catalogue = InMemoryCatalogue()
    catalogue.down = True
    with pytest.raises(ConnectionError):
        await dataset_batch_handler(InMemoryIndex(), catalogue)(batch(stored_event(make_dataset())))


@pytest.mark.parametrize(
    ("value", "error_type", "says"),
    [
        (b"{not json", "invalid-json", "not valid"),
        (b'{"type": "dataset.renamed", "source": "/x", "data": {}}', "unknown-type", "renamed"),
        (b'{"type": "dataset.stored", "source": "/x", "data": {}}', "invalid-event", "dataset"),
        (b"", "invalid-json", "not valid"),
    ],
)
async def test_undecodable_events_are_rejected_with_a_reason_and_the_rest_indexed(
    value: bytes,
    error_type: str,
    says: str,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
) -> None:
    index = InMemoryIndex()
    rejected, indexed = await dataset_batch_handler(index, InMemoryCatalogue())(
        batch(value, stored_event(make_dataset()))
    )
    assert isinstance(rejected, Rejected)
    assert rejected.error_type == error_type
    assert says in rejected.reason
    assert rejected.reason.startswith("catalogue.datasets event is not valid")
    assert indexed is None
    assert list(index.documents) == ["local/11012345/scan_001"]


async def test_deleted_event_removes_the_dataset(
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
    deleted_event: Callable[..., bytes],
) -> None:
    index = InMemoryIndex()
    handle = dataset_batch_handler(index, InMemoryCatalogue())
    await handle(batch(stored_event(make_dataset())))
    assert await handle(batch(deleted_event("local/11012345/scan_001", 2))) == [None]
    assert index.documents == {}


async def test_files_and_proposals_from_the_catalogue_are_indexed_with_the_dataset(
    make_dataset: Callable[..., Dataset], stored_event: Callable[..., bytes]
) -> None:
    dataset = make_dataset(proposalIds=["11012345", "DOOR-77"])
    context = CatalogueContext(
        files=("img_00001.cbf", "sub/img_00002.cbf"),
        proposals=(
            {"proposalId": "11012345", "type": "Beamtime", "parentProposalId": "DOOR-77"},
            {
                "proposalId": "DOOR-77",
                "type": "DOOR Proposal",
                "title": "Liquid crystals under strain",
                "pi_firstname": "Ada",
                "pi_lastname": "Lovelace",
                "pi_email": "ada@example.org",
            },
        ),
    )
    index = InMemoryIndex()
    await dataset_batch_handler(index, InMemoryCatalogue({dataset.pid: context}))(
        batch(stored_event(dataset))
    )
    source = index.documents[dataset.pid].source
    assert source is not None
    text = [value.strip("\x02\x03") for value in source["search"]["text"]]
    assert {"img_00001.cbf", "sub/img_00002.cbf", "Liquid crystals under strain"} <= set(text)
    assert {"11012345", "DOOR-77", "Ada Lovelace"} <= set(text)
    assert source["search"]["memberText"] == ["\x02ada@example.org\x03"]
    assert source["search"]["beamtimeIds"] == ["11012345"]
    assert source["search"]["proposalIds"] == ["11012345", "DOOR-77"]
    assert source["search"]["pis"] == ["Ada Lovelace", "ada@example.org"]


class GatedIndex(InMemoryIndex):
    """Holds its first `_bulk` answer until `gate` opens; records each request's pids."""

    def __init__(self, gate: asyncio.Event, *, fail_first: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate
        self.fail_first = fail_first
        self.sent: list[list[str]] = []

    async def bulk(self, writes: Sequence[BulkWrite]) -> list[BulkResult]:
        self.sent.append([write.pid for write in writes])
        if len(self.sent) == 1:
            await self.gate.wait()
            if self.fail_first:
                raise ConnectionError("OpenSearch answered 503")
        return await super().bulk(writes)


class ObservedCatalogue(InMemoryCatalogue):
    """Opens `gate` when asked for the second request's context."""

    def __init__(self, gate: asyncio.Event) -> None:
        super().__init__()
        self.gate = gate
        self.asked: list[list[str]] = []

    async def contexts(self, datasets: Sequence[Dataset]) -> dict[str, CatalogueContext]:
        self.asked.append([d.pid for d in datasets])
        if len(self.asked) == 2:
            self.gate.set()
        return await super().contexts(datasets)


async def test_a_batch_goes_out_as_pipelined_requests_in_record_order(
    make_dataset: Callable[..., Dataset], stored_event: Callable[..., bytes]
) -> None:
    """The second request is built while the first is in OpenSearch: without pipelining the
    first answer would wait for ever for the gate the second request's lookup opens."""
    gate = asyncio.Event()
    names = [f"scan_{n:03d}" for n in range(5)]
    bad = make_dataset(names[2])
    index = GatedIndex(gate, refuse={bad.pid: "mapper_parsing_exception: bad date"})
    catalogue = ObservedCatalogue(gate)
    handle = dataset_batch_handler(index, catalogue, bulk_max_records=2)
    outcomes = await asyncio.wait_for(
        handle(batch(*(stored_event(make_dataset(name)) for name in names))), timeout=10
    )
    pids = [make_dataset(name).pid for name in names]
    assert index.sent == [pids[0:2], pids[2:4], pids[4:5]]
    assert catalogue.asked == index.sent
    assert [outcome is None for outcome in outcomes] == [True, True, False, True, True]
    assert isinstance(outcomes[2], Rejected) and "bad date" in outcomes[2].reason
    assert set(index.documents) == set(pids) - {bad.pid}


async def test_a_failed_request_fails_the_batch_and_sends_no_later_one(
    make_dataset: Callable[..., Dataset], stored_event: Callable[..., bytes]
) -> None:
    gate = asyncio.Event()
    index = GatedIndex(gate, fail_first=True)
    handle = dataset_batch_handler(index, ObservedCatalogue(gate), bulk_max_records=1)
    with pytest.raises(ConnectionError, match="503"):
        await asyncio.wait_for(
            handle(batch(*(stored_event(make_dataset(f"scan_{n}")) for n in range(3)))),
            timeout=10,
        )
    assert len(index.sent) == 1
    assert index.documents == {}


async def test_requests_not_started_within_the_time_budget_defer_the_rest_of_the_batch(
    make_dataset: Callable[..., Dataset], stored_event: Callable[..., bytes]
) -> None:
    """On a slow cluster a batch stops starting requests once its budget is spent (the first
    always goes out) and hands the rest back to the next batch."""
    ticks = iter(range(100))
    index = InMemoryIndex()
    handle = dataset_batch_handler(
        index,
        InMemoryCatalogue(),
        bulk_max_records=2,
        time_budget=2,
        clock=lambda: next(ticks),
    )

    outcomes = await handle(
        batch(b"{not json", *(stored_event(make_dataset(f"scan_{n}")) for n in range(5)))
    )

    assert isinstance(outcomes[0], Rejected)
    assert outcomes[1:] == [None, None, None, None, DEFERRED]
    assert sorted(index.documents) == sorted(make_dataset(f"scan_{n}").pid for n in range(4))
