"""`copied` is `model_copy(update=...)`: same values, extras, set fields and private state."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, PrivateAttr

from scicat_ingestor.model_copies import copied, update_in_place
from scicat_schemas.documents import DataFile, Dataset, OrigDatablock
from scicat_schemas.events import FileClosedData

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


class WithPrivate(BaseModel):
    name: str
    _seen: list[str] = PrivateAttr(default_factory=list)


def _state(model: BaseModel) -> tuple[Any, ...]:
    return (
        type(model),
        model.__dict__,
        model.__pydantic_extra__,
        model.__pydantic_fields_set__,
        model.__pydantic_private__,
    )


DATASET = Dataset.model_validate(
    {
        "pid": "p/1",
        "datasetName": "scan_1",
        "sourceFolder": "/data/scan_1",
        "creationLocation": "/DESY/PETRA III/P08",
        "creationTime": NOW,
        "ownerGroup": "g",
        "datasetStatusReason": "kept as an extra field",
    }
)
DATABLOCK = OrigDatablock.model_validate(
    {
        "_id": "b/1",
        "datasetId": "p/1",
        "size": 1,
        "ownerGroup": "g",
        "dataFileList": [{"path": "a", "size": 1, "time": NOW}],
    }
)
PRIVATE = WithPrivate(name="x")
PRIVATE._seen.append("before")

CASES = [
    (DATASET, {"size": 7, "numberOfFiles": 2, "scientificMetadata": {"e": 1}}),
    (DATASET, {"datasetStatusReason": "an extra, replaced", "newExtra": [1]}),
    (DATASET, {}),
    (DATABLOCK, {"size": 9, "dataFileList": []}),
    (DataFile(path="a", size=1, time=NOW), {"path": "b/a"}),
    (
        FileClosedData(
            run_id="r", beamtime_id="b", instrument="P08", path="/a", size=1, closed_at=NOW
        ),
        {"size": 2},
    ),
    (PRIVATE, {"name": "y"}),
]


@pytest.mark.parametrize(("model", "update"), CASES)
def test_a_copy_is_what_model_copy_makes(model: BaseModel, update: dict[str, Any]) -> None:
    before = _state(model.model_copy())

    copy = copied(model, update)

    assert _state(copy) == _state(model.model_copy(update=update))
    assert copy == model.model_copy(update=update)
    assert _state(model) == before  # the original is left as it was


def test_a_copy_shares_nothing_it_could_change_with_the_original() -> None:
    copy = copied(DATASET, {"size": 3})
    copy.__pydantic_fields_set__.add("description")
    assert copy.__pydantic_extra__ is not None and DATASET.__pydantic_extra__ is not None
    copy.__pydantic_extra__["another"] = 1
    private = copied(PRIVATE, {})
    assert private.__pydantic_private__ is not None
    private.__pydantic_private__["_seen"] = ["replaced"]

    assert "description" not in DATASET.__pydantic_fields_set__
    assert "another" not in DATASET.__pydantic_extra__
    assert PRIVATE._seen == ["before"]


def test_an_update_in_place_is_what_a_copy_would_have_been() -> None:
    model = DATASET.model_copy(deep=True)
    update = {"size": 11, "numberOfFiles": 4}

    update_in_place(model, update)

    assert _state(model) == _state(DATASET.model_copy(update=update))
