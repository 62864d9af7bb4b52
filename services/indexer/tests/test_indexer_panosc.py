"""The PaNOSC search API on the embedded stack: filter language, units, public data only."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from pymongo import AsyncMongoClient

from scicat_schemas.documents import PROPOSAL_COLLECTION, Dataset

if TYPE_CHECKING:
    from conftest import RunningIndexer


@pytest.fixture
async def published(
    indexer: RunningIndexer,
    mongo_uri: str,
    database_name: str,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
) -> list[Dataset]:
    """Two published datasets (energies 5500 eV and 12 keV) and one private (8 keV)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    await client[database_name][PROPOSAL_COLLECTION].insert_one(
        {"proposalId": "DOOR-1", "type": "DOOR Proposal", "title": "Thin films", "ownerGroup": "x"}
    )
    await client.close()
    datasets = [
        make_dataset(
            "film_a",
            isPublished=True,
            proposalIds=["11012345", "DOOR-1"],
            techniques=[{"pid": "PaNET01188", "name": "SAXS"}],
            scientificMetadata={"energy": {"value": 5500, "unit": "eV"}, "mode": "fly"},
        ),
        make_dataset(
            "film_b",
            hours=1,
            isPublished=True,
            instrumentIds=["P03"],
            creationLocation="/DESY/P03",
            scientificMetadata={"energy": {"value": 12, "unit": "keV"}},
        ),
        make_dataset(
            "private_c",
            proposalIds=["11077777"],
            scientificMetadata={"energy": {"value": 8, "unit": "keV"}},
        ),
    ]
    await indexer.produce(*((d.pid, stored_event(d)) for d in datasets))
    await indexer.wait_total(3)  # the fixture's caller sees the private one too
    return datasets


async def _get(indexer: RunningIndexer, path: str, filter_: dict[str, Any] | None = None) -> Any:
    params = {"filter": json.dumps(filter_)} if filter_ is not None else {}
    response = await indexer.http.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _energy(operator: str, operand: Any, unit: str) -> dict[str, Any]:
    where = {"and": [{"name": "energy"}, {"value": {operator: operand}}, {"unit": unit}]}
    return {"include": [{"relation": "parameters", "scope": {"where": where}}]}


async def test_parameter_conditions_convert_units_and_return_values_in_the_asked_unit(
    indexer: RunningIndexer, published: list[Dataset]
) -> None:
    found = await _get(indexer, "/panosc/Datasets", _energy("between", [5, 6], "keV"))
    assert [d["title"] for d in found] == ["film_a"]
    [energy] = [p for p in found[0]["parameters"] if p["name"] == "energy"]
    assert (energy["value"], energy["unit"]) == (pytest.approx(5.5), "keV")

    above = await _get(indexer, "/panosc/Datasets", _energy("gt", 6000, "eV"))
    assert [d["title"] for d in above] == ["film_b"]  # 8 keV is private
    in_joules = await _get(indexer, "/panosc/Datasets", _energy("lt", 1e-15, "J"))
    assert [d["title"] for d in in_joules] == ["film_a"]


async def test_where_include_limit_and_skip(
    indexer: RunningIndexer, published: list[Dataset]
) -> None:
    titled = await _get(
        indexer,
        "/panosc/Datasets",
        {"where": {"title": {"ilike": "%FILM%"}}, "include": [{"relation": "instrument"}]},
    )
    assert [d["title"] for d in titled] == ["film_b", "film_a"]
    assert titled[0]["instrument"] == {"pid": "P03", "name": "P03", "facility": "DESY"}
    page = await _get(indexer, "/panosc/Datasets", {"limit": 1, "skip": 1})
    assert [d["title"] for d in page] == ["film_a"]
    by_technique = await _get(
        indexer,
        "/panosc/Datasets",
        {"include": [{"relation": "techniques", "scope": {"where": {"name": "SAXS"}}}]},
    )
    assert [d["techniques"] for d in by_technique] == [[{"pid": "PaNET01188", "name": "SAXS"}]]
    count = await indexer.http.get("/panosc/Datasets/count")
    assert count.json() == {"count": 2}


async def test_documents_and_instruments_come_from_published_datasets_only(
    indexer: RunningIndexer, published: list[Dataset]
) -> None:
    documents = await _get(indexer, "/panosc/Documents", {"include": [{"relation": "datasets"}]})
    assert {d["pid"]: d["title"] for d in documents} == {"11012345": None, "DOOR-1": "Thin films"}
    assert "11077777" not in {d["pid"] for d in documents}
    titled = await _get(indexer, "/panosc/Documents", {"where": {"title": {"like": "Thin%"}}})
    assert [d["pid"] for d in titled] == ["DOOR-1"]
    instruments = await _get(indexer, "/panosc/Instruments")
    assert sorted(i["pid"] for i in instruments) == ["P03", "P08"]
    private = await indexer.http.get(f"/panosc/Datasets/{published[2].pid}")
    assert private.status_code == 404


@pytest.mark.parametrize(
    "filter_",
    [
        "{not json",
        json.dumps(_energy("gt", 5, "bananas")),
        json.dumps({"where": {"owner": "x"}}),
        json.dumps({"include": [{"relation": "files"}]}),
        json.dumps({"limit": 0}),
    ],
)
async def test_filters_the_api_cannot_answer_are_a_400_saying_why(
    indexer: RunningIndexer, filter_: str
) -> None:
    response = await indexer.http.get("/panosc/Datasets", params={"filter": filter_})
    assert response.status_code == 400
    assert response.json()["detail"]
