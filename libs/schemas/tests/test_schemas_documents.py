"""The stored-document models: what they keep, and what they never carry."""

from __future__ import annotations

from datetime import UTC, datetime

from scicat_schemas.documents import INGESTOR_APPLIED_EVENTS, Dataset


def _stored_dataset(**extra: object) -> dict[str, object]:
    return {
        "pid": "p/b/r",
        "datasetName": "r",
        "sourceFolder": "/data/r",
        "creationTime": datetime(2026, 12, 6, tzinfo=UTC),
        "creationLocation": "/DESY/P08",
        "ownerGroup": "b-dmgt",
        **extra,
    }


def test_a_dataset_read_from_the_store_never_carries_the_ingestors_bookkeeping() -> None:
    """Every service reads datasets through this model, so none can publish, index or serve the
    identities the ingestor keeps in the stored document."""
    doc = _stored_dataset(**{INGESTOR_APPLIED_EVENTS: ["src\x1fe1"], "scicatOnly": 1})

    dataset = Dataset.model_validate(doc)

    dumped = dataset.model_dump(mode="json")
    assert INGESTOR_APPLIED_EVENTS not in dumped
    assert dumped["scicatOnly"] == 1  # other fields it does not model are still kept
    assert INGESTOR_APPLIED_EVENTS in doc  # the stored document itself is left as it was
