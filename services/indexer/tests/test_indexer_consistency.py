"""The index follows the catalogue exactly once, whatever Kafka redelivers (embedded stack)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from scicat_schemas.documents import Dataset
from scicat_schemas.runtime import dead_letter

if TYPE_CHECKING:
    from conftest import RunningIndexer

PID = "local/11012345/scan_001"


async def _get(indexer: RunningIndexer, pid: str = PID) -> dict | None:
    response = await indexer.http.get(f"/datasets/{pid}")
    return response.json() if response.status_code == 200 else None


async def test_stale_revision_does_not_overwrite_a_newer_one(
    indexer: RunningIndexer,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
) -> None:
    newer = make_dataset(pipelineRevision=3, datasetName="after the run stopped")
    older = make_dataset(pipelineRevision=2, datasetName="while running")
    await indexer.produce((PID, stored_event(newer)), (PID, stored_event(older)))
    await indexer.wait_processed(2)

    stored = await _get(indexer)
    assert stored is not None
    assert (stored["pipelineRevision"], stored["datasetName"]) == (3, "after the run stopped")
    assert (await indexer.search(text="while running"))["total"] == 0
    assert await indexer.outcomes() == {"ok": 2}


async def test_deleted_dataset_disappears_and_a_late_copy_does_not_bring_it_back(
    indexer: RunningIndexer,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
    deleted_event: Callable[..., bytes],
) -> None:
    dataset = make_dataset(pipelineRevision=4)
    await indexer.produce((PID, stored_event(dataset)))
    await indexer.wait_total(1)

    await indexer.produce((PID, deleted_event(PID, 5)), (PID, stored_event(dataset)))
    await indexer.wait_processed(3)
    assert await _get(indexer) is None
    assert (await indexer.search())["total"] == 0
    assert await indexer.outcomes() == {"ok": 3}


async def test_deleting_a_dataset_never_indexed_is_acknowledged(
    indexer: RunningIndexer,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
    deleted_event: Callable[..., bytes],
) -> None:
    other = make_dataset("scan_002")
    await indexer.produce((PID, deleted_event(PID, 1)), (other.pid, stored_event(other)))
    await indexer.wait_total(1)
    assert (await indexer.search())["items"][0]["pid"] == other.pid


async def test_redelivered_event_leaves_one_document(
    indexer: RunningIndexer,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
) -> None:
    event = stored_event(make_dataset(pipelineRevision=2), event_id="evt-1")
    await indexer.produce((PID, event), (PID, event))
    await indexer.wait_processed(2)

    page = await indexer.search()
    assert page["total"] == 1
    assert page["items"][0]["pipelineRevision"] == 2


async def test_invalid_event_is_dead_lettered_with_its_reason_and_the_next_is_indexed(
    indexer: RunningIndexer,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
) -> None:
    invalid = b'{"type": "dataset.stored", "source": "/tests", "id": "bad-1", "data": {}}'
    good = make_dataset("scan_002")
    await indexer.produce((PID, invalid), (good.pid, stored_event(good)))

    await indexer.wait_total(1)
    [letter] = await indexer.dead_letters(1)
    headers = {key: value.decode() for key, value in letter.headers}
    assert letter.value == invalid
    assert headers[dead_letter.ERROR_TYPE] == "invalid-event"
    assert "data.dataset: Field required" in headers[dead_letter.REASON]
    assert headers[dead_letter.ORIGINAL_TOPIC] == "catalogue.datasets"
    assert await _get(indexer, good.pid) is not None


async def test_document_opensearch_refuses_in_a_batch_is_dead_lettered_and_the_rest_indexed(
    indexer: RunningIndexer,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
) -> None:
    before, refused, after = make_dataset("scan_001"), make_dataset("x" * 600), make_dataset("b")
    await indexer.produce(*((PID, stored_event(d)) for d in (before, refused, after)))

    await indexer.wait_total(2)
    [letter] = await indexer.dead_letters(1)
    headers = {key: value.decode() for key, value in letter.headers}
    assert headers[dead_letter.ERROR_TYPE] == "index-refused"
    assert "OpenSearch refused the document (400)" in headers[dead_letter.REASON]
    assert "too long" in headers[dead_letter.REASON]
