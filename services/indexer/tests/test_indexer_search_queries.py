"""Each kind of search on the embedded stack: text over everything, units, facets, cursors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest
from pymongo import AsyncMongoClient

from scicat_indexer.auth import Principal
from scicat_schemas.documents import (
    ORIG_DATABLOCK_COLLECTION,
    PROPOSAL_COLLECTION,
    Dataset,
    OrigDatablock,
)

if TYPE_CHECKING:
    from conftest import RunningIndexer


@pytest.fixture
async def catalogue(mongo_uri: str, database_name: str) -> AsyncIterator[Any]:
    """The SciCat database the ingestor writes and the indexer reads."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        yield client[database_name]
    finally:
        await client.close()


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit}


@pytest.fixture
async def catalogue_of_three(
    indexer: RunningIndexer,
    catalogue: Any,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
) -> list[Dataset]:
    """Three datasets of two beamtimes, with files and proposals in MongoDB."""
    datasets = [
        make_dataset(
            "scan_001",
            hours=0,
            proposalIds=["11012345", "DOOR-1"],
            principalInvestigators=["ada@example.org"],
            techniques=[{"pid": "PaNET01188", "name": "SAXS"}],
            scientificMetadata={
                "energy": _quantity(5500, "eV"),
                "sample": {"name": "LaB6", "temperature": _quantity(295, "K")},
                "operators": ["John Smith", "Jane Roe"],
            },
        ),
        make_dataset(
            "scan_002",
            hours=1,
            proposalIds=["11012345", "DOOR-1"],
            scientificMetadata={
                "energy": {"value": 4.0, "unit": "keV", "valueSI": 6.408707e-16, "unitSI": "J"},
                "sample": {"name": "Si", "temperature": _quantity(20, "degC")},
                "detector": {"mode": "fly"},
            },
        ),
        make_dataset(
            "scan_003",
            beamtime="11099999",
            hours=24 * 40,
            instrumentIds=["P03"],
            type="derived",
            isPublished=True,
            scientificMetadata={"energy": _quantity(12, "keV"), "sample": {"name": "GaAs"}},
        ),
    ]
    files = {
        "scan_001": ["img_00001.cbf", "img_00002.cbf"],
        "scan_002": ["flat/dark_field.h5"],
        "scan_003": ["film_master.nxs"],
    }
    await catalogue[ORIG_DATABLOCK_COLLECTION].insert_many(
        [
            {
                "_id": OrigDatablock.id_for(d.pid),
                "datasetId": d.pid,
                "size": 1,
                "dataFileList": [
                    {"path": path, "size": 1, "time": d.creationTime}
                    for path in files[d.runNumber or d.datasetName]
                ],
                "ownerGroup": d.ownerGroup,
            }
            for d in datasets
        ]
    )
    await catalogue[PROPOSAL_COLLECTION].insert_many(
        [
            {
                "proposalId": "11012345",
                "type": "Beamtime",
                "parentProposalId": "DOOR-1",
                "ownerGroup": "11012345",
            },
            {
                "proposalId": "DOOR-1",
                "type": "DOOR Proposal",
                "title": "Strain in nematic liquid crystals",
                "pi_firstname": "Ada",
                "pi_lastname": "Lovelace",
                "ownerGroup": "11012345",
            },
        ]
    )
    await indexer.produce(*((d.pid, stored_event(d)) for d in datasets))
    await indexer.wait_processed(3)
    return datasets


def _runs(page: dict[str, Any]) -> list[str]:
    return sorted(item["pid"].rsplit("/", 1)[1] for item in page["items"])


async def test_free_text_finds_file_names_metadata_values_proposals_and_pis(
    indexer: RunningIndexer, catalogue_of_three: list[Dataset]
) -> None:
    expectations = {
        "00002.cb": ["scan_001"],  # a file name fragment
        "dark_FIELD": ["scan_002"],
        "john": ["scan_001"],  # one element of a list of strings
        "gaas": ["scan_003"],  # a string metadata value
        "nematic liquid": ["scan_001", "scan_002"],  # the proposal title
        "lovelace": ["scan_001", "scan_002"],  # the proposal's PI
        "ada@exa": ["scan_001"],  # the dataset's PI
        "DOOR-1": ["scan_001", "scan_002"],  # the proposal id
        "110999": ["scan_003"],  # a beamtime id fragment
    }
    for text, runs in expectations.items():
        assert _runs(await indexer.search(text=text)) == runs, text


async def test_unit_aware_conditions_match_values_stored_in_any_compatible_unit(
    indexer: RunningIndexer, catalogue_of_three: list[Dataset]
) -> None:
    expectations = {
        ("energy>5keV",): ["scan_001", "scan_003"],  # 5500 eV and 12 keV, not 4 keV
        ("energy<=5500eV",): ["scan_001", "scan_002"],
        ("energy.value>5keV",): ["scan_001", "scan_003"],  # with `.value` (#138)
        ("energy=5.5keV",): ["scan_001"],
        ("energy=3..6 keV",): ["scan_001", "scan_002"],
        ("energy>1e-15 J",): ["scan_003"],
        ("sample.temperature>290K",): ["scan_001", "scan_002"],  # 20 °C is 293.15 K
        ("sample.temperature<0degC",): [],
        ("energy>5keV", "sample.temperature>290K"): ["scan_001"],
        ("energy>5000",): ["scan_001"],  # no unit: the number as stored
    }
    for conditions, runs in expectations.items():
        page = await indexer.search(condition=list(conditions))
        assert _runs(page) == runs, conditions


async def test_text_conditions_contains_equal_and_exists_on_nested_keys(
    indexer: RunningIndexer, catalogue_of_three: list[Dataset]
) -> None:
    expectations = {
        "sample.name=lab6": ["scan_001"],
        "sample.name~a": ["scan_001", "scan_003"],
        "operators~smith": ["scan_001"],  # a list matches if one element matches
        "detector.mode": ["scan_002"],
        "sample": [],  # not a leaf
    }
    for condition, runs in expectations.items():
        assert _runs(await indexer.search(condition=condition)) == runs, condition


async def test_unknown_or_incompatible_units_are_a_400_saying_why(
    indexer: RunningIndexer, catalogue_of_three: list[Dataset]
) -> None:
    unknown = await indexer.http.get("/datasets", params={"condition": "energy>5 bananas"})
    assert unknown.status_code == 400
    assert "bananas" in unknown.json()["detail"]
    incompatible = await indexer.http.post(
        "/datasets/search",
        json={"conditions": [{"key": "energy", "relation": "gt", "value": 5, "unit": "K"}]},
    )
    assert incompatible.status_code == 400
    assert "not compatible" in incompatible.json()["detail"]


async def test_filters_and_facets_count_all_matches(
    indexer: RunningIndexer, catalogue_of_three: list[Dataset]
) -> None:
    page = await indexer.search(
        facet=["instrument", "beamtime", "proposal", "pi", "technique", "type", "creationTime"]
    )
    facets = {
        name: {b["value"]: b["count"] for b in buckets} for name, buckets in page["facets"].items()
    }
    assert facets["instrument"] == {"P08": 2, "P03": 1}
    assert facets["beamtime"] == {"11012345": 2}
    assert facets["proposal"]["DOOR-1"] == 2
    assert facets["pi"]["Ada Lovelace"] == 2
    assert facets["technique"] == {"SAXS": 1}
    assert facets["type"] == {"raw": 2, "derived": 1}
    assert sorted(facets["creationTime"].values()) == [1, 2]
    assert [v[:7] for v in facets["creationTime"]] == ["2025-03", "2025-04"]

    filtered = await indexer.search(instrument="P08", type="raw", facet="instrument")
    assert filtered["total"] == 2
    assert filtered["facets"]["instrument"] == [{"value": "P08", "count": 2}]
    assert _runs(await indexer.search(beamtime="11012345", pi="Ada Lovelace")) == [
        "scan_001",
        "scan_002",
    ]
    assert _runs(await indexer.search(created_from="2025-04-01T00:00:00Z")) == ["scan_003"]


async def test_search_after_pages_through_every_match_once_in_sort_order(
    indexer: RunningIndexer, catalogue_of_three: list[Dataset]
) -> None:
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 1, "sort": "datasetName:desc"}
    while True:
        page = await indexer.search(**params)
        seen += [item["datasetName"] for item in page["items"]]
        if page["next"] is None:
            break
        params["search_after"] = page["next"]
    assert seen == ["scan_003", "scan_002", "scan_001"]
    other_sort = await indexer.http.get(
        "/datasets", params={"search_after": params["search_after"], "sort": "size"}
    )
    assert other_sort.status_code == 400


async def test_json_search_is_the_same_search_as_query_parameters(
    indexer: RunningIndexer, catalogue_of_three: list[Dataset]
) -> None:
    response = await indexer.http.post(
        "/datasets/search",
        json={
            "text": "img",
            "conditions": [{"key": "energy", "relation": "range", "value": [5, 6], "unit": "keV"}],
            "filters": {"instrument": ["P08"]},
            "facets": ["type"],
        },
    )
    assert response.status_code == 200, response.text
    assert _runs(response.json()) == ["scan_001"]
    assert response.json()["facets"]["type"] == [{"value": "raw", "count": 1}]


@pytest.mark.parametrize("indexer_principal", [Principal.anonymous()])
async def test_anonymous_callers_search_and_count_only_published_datasets(
    indexer: RunningIndexer, catalogue_of_three: list[Dataset]
) -> None:
    page = await indexer.search(facet="instrument", text="scan")
    assert _runs(page) == ["scan_003"]
    assert page["facets"]["instrument"] == [{"value": "P03", "count": 1}]
    private = await indexer.http.get(f"/datasets/{catalogue_of_three[0].pid}")
    assert private.status_code == 404


async def test_a_measurement_is_found_by_the_range_its_runs_span(
    indexer: RunningIndexer,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
) -> None:
    """The ingestor's grouped datasets (`MEASUREMENT_KEY`) hold statistics per quantity, with
    the range of the runs as the quantity's value: unit-aware search finds them by it."""
    electron_volt = 1.602176634e-19
    measurement = make_dataset(
        "m1",
        scientificMetadata={
            "energy": {
                "count": 3,
                "min": 18.0,
                "max": 20.0,
                "mean": 19.2,
                "unit": "keV",
                "value": [18.0, 20.0],
                "valueSI": [18e3 * electron_volt, 20e3 * electron_volt],
                "unitSI": "kg*m**2/s**2",
            },
            "runs": ["scan_1", "scan_2", "scan_3"],
        },
    )
    await indexer.produce((measurement.pid, stored_event(measurement)))
    await indexer.wait_processed(1)

    expectations = {
        "energy>19keV": ["m1"],
        "energy>19500eV": ["m1"],
        "energy<18.5keV": ["m1"],
        "energy>21keV": [],
        "energy=17..17.9keV": [],
        "energy.mean>19": ["m1"],  # each statistic as stored, without a unit
        "energy.count=3": ["m1"],  # an equality window osmem hung on as one range
        "energy=20keV": ["m1"],  # an end of the range
        "energy=19keV": [],  # the range is two values, not an interval
    }
    for condition, runs in expectations.items():
        assert _runs(await indexer.search(condition=condition)) == runs, condition
