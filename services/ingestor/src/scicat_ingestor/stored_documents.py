"""Documents as stored in MongoDB ↔ the models: every read validated, every write complete.

Shared by the per-event store (`store.py`) and the batch store (`batch_store.py`).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from scicat_schemas.documents import (
    DATASET_COLLECTION,
    ORIG_DATABLOCK_COLLECTION,
    PROPOSAL_COLLECTION,
    Dataset,
    OrigDatablock,
    Proposal,
)


class CorruptStoredDocument(Exception):
    """A stored document does not validate; no retry can help until a person repairs it."""


def proposal_from(doc: dict[str, Any]) -> Proposal:
    try:
        return Proposal.model_validate({k: v for k, v in doc.items() if k != "_id"})
    except ValidationError as error:
        raise CorruptStoredDocument(
            f"stored {PROPOSAL_COLLECTION} {doc.get('_id')!r} is not a valid proposal: {error}"
        ) from error


def revision_match(revision: int) -> Any:
    """Revision 0 also matches a dataset without the field (one SciCat itself created)."""
    return {"$in": [0, None]} if revision == 0 else revision


def dataset_doc(dataset: Dataset) -> dict[str, Any]:
    """Every field, `None` included, so a document read back compares equal to the model."""
    return dataset.model_dump(mode="python")


def changed_fields(before: Dataset, after: dict[str, Any]) -> dict[str, Any]:
    """The fields of `after` (a `dataset_doc`) to `$set` on the stored `before`: those whose
    value differs, and those `before` lacks, even when `None` (an extra field such as
    `datasetStatusReason` set to `None`), so an updated document holds what an inserted one
    would."""
    old = dataset_doc(before)
    return {key: value for key, value in after.items() if key not in old or old[key] != value}


def datablock_doc(datablock: OrigDatablock) -> dict[str, Any]:
    return datablock.model_dump(mode="python", by_alias=True)


def dataset_from(doc: dict[str, Any]) -> Dataset:
    doc = {key: value for key, value in doc.items() if key != "_id"}
    try:
        return Dataset.model_validate(doc)
    except ValidationError as error:
        raise CorruptStoredDocument(
            f"stored {DATASET_COLLECTION} {doc.get('pid')!r} is not a valid dataset: {error}"
        ) from error


def datablock_from(doc: dict[str, Any]) -> OrigDatablock:
    try:
        return OrigDatablock.model_validate(doc)
    except ValidationError as error:
        raise CorruptStoredDocument(
            f"stored {ORIG_DATABLOCK_COLLECTION} {doc.get('_id')!r} is not a valid datablock: "
            f"{error}"
        ) from error
