"""What the ingestor announces for a stored revision: `dataset.stored`, byte for byte the same
whenever it is published again."""

from __future__ import annotations

from datetime import UTC, datetime

from scicat_ingestor.domain import apply_event
from scicat_ingestor.publisher import dataset_stored_event
from scicat_schemas.events import DATASET_EVENT, encode

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


def test_dataset_stored_event_is_the_same_for_the_same_revision(policy, acquisitions) -> None:
    entry = apply_event(acquisitions.file_closed(), None, policy=policy, now=NOW)
    assert entry is not None

    first = dataset_stored_event(entry.dataset, source="/ingestor")
    again = dataset_stored_event(entry.dataset, source="/ingestor")

    assert first.id == "test/11012345/scan_0042#1"
    assert (first.subject, first.source, first.time) == (entry.dataset.pid, "/ingestor", NOW)
    assert encode(first) == encode(again)
    decoded = DATASET_EVENT.validate_json(encode(first))
    assert decoded.data.dataset == entry.dataset
