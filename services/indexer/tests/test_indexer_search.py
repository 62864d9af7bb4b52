"""Events on real Kafka become searchable in real OpenSearch (embedded stack)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from opensearchpy import AsyncOpenSearch

from scicat_indexer.app import create_app
from scicat_indexer.settings import Settings
from scicat_schemas.documents import Dataset

if TYPE_CHECKING:
    from conftest import RunningIndexer


async def _index_three(
    indexer: RunningIndexer,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
) -> list[Dataset]:
    datasets = [
        make_dataset(
            "scan_001",
            hours=0,
            datasetName="Tomography LiquidCrystal Q7",
            description="Heating ramp of a nematic sample",
            keywords=["tomography"],
        ),
        make_dataset(
            "scan_002",
            hours=1,
            datasetName="SAXS reference",
            description="Silver behenate calibration",
            keywords=["calibration", "AgBeh"],
        ),
        make_dataset(
            "scan_003",
            beamtime="11099999",
            hours=2,
            datasetName="GIWAXS thin film",
            description=None,
            sourceFolder="/asap3/petra3/gpfs/p03/2025/data/11099999/raw/film_a",
        ),
    ]
    await indexer.produce(*((d.pid, stored_event(d)) for d in datasets))
    await indexer.wait_total(3)
    return datasets


def _pids(page: dict) -> list[str]:
    return [item["pid"] for item in page["items"]]


async def test_stored_datasets_are_listed_newest_first(
    indexer: RunningIndexer,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
) -> None:
    await _index_three(indexer, make_dataset, stored_event)
    page = await indexer.search()
    assert _pids(page) == [
        "local/11099999/scan_003",
        "local/11012345/scan_002",
        "local/11012345/scan_001",
    ]
    second = await indexer.search(limit=1, skip=1)
    assert second["total"] == 3
    assert _pids(second) == ["local/11012345/scan_002"]


async def test_fragments_match_as_case_insensitive_substrings(
    indexer: RunningIndexer,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
) -> None:
    await _index_three(indexer, make_dataset, stored_event)
    expectations = {
        "UIDcrys": ["local/11012345/scan_001"],  # middle of a name, other case
        "Q7": ["local/11012345/scan_001"],  # two characters
        "gb": ["local/11012345/scan_002"],  # two characters of a keyword, other case
        "p03/2025": ["local/11099999/scan_003"],  # source folder
        "film_a": ["local/11099999/scan_003"],
        "er behenate calibrat": ["local/11012345/scan_002"],  # exactly max_gram characters
        "ilver behenate calibration": ["local/11012345/scan_002"],  # longer than max_gram
        "MOGRAPHY": ["local/11012345/scan_001"],
        "raw": ["local/11099999/scan_003", "local/11012345/scan_002", "local/11012345/scan_001"],
    }
    for fragment, pids in expectations.items():
        assert _pids(await indexer.search(text=fragment)) == pids, fragment


async def test_fragments_that_occur_nowhere_match_nothing(
    indexer: RunningIndexer,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
) -> None:
    await _index_three(indexer, make_dataset, stored_event)
    for fragment in ("zq", "crystalLiquid", "x*y", "nematic sample heating"):
        assert (await indexer.search(text=fragment))["total"] == 0, fragment


async def test_dataset_is_returned_by_pid_with_slashes_as_stored(
    indexer: RunningIndexer,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
) -> None:
    dataset = make_dataset("scan_001", extraField={"kept": True})
    await indexer.produce((dataset.pid, stored_event(dataset)))
    await indexer.wait_total(1)

    response = await indexer.http.get("/datasets/local/11012345/scan_001")
    assert response.status_code == 200
    body = response.json()
    assert body == dataset.model_dump(mode="json")
    assert "scientificMetadataPairs" not in body

    missing = await indexer.http.get("/datasets/local/11012345/scan_404")
    assert missing.status_code == 404
    assert "local/11012345/scan_404" in missing.json()["detail"]


async def test_paging_and_limits_outside_their_range_are_refused(indexer: RunningIndexer) -> None:
    for params in (
        {"limit": 0},
        {"limit": 1001},
        {"skip": -1},
        {"limit": "many"},
        {"skip": 9995, "limit": 10},
    ):
        response = await indexer.http.get("/datasets", params=params)
        assert response.status_code == 422, params
    assert (await indexer.http.get("/datasets", params={"limit": 1000})).status_code == 200


async def test_scientific_metadata_is_searchable_as_nested_pairs(
    indexer: RunningIndexer,
    indexer_settings: Settings,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
) -> None:
    def at(kelvin: float) -> dict:
        return {"sample": {"temperature": {"value": kelvin, "unit": "K"}}}

    hot = make_dataset("hot", scientificMetadata=at(350))
    cold = make_dataset("cold", scientificMetadata=at(4))
    await indexer.produce((hot.pid, stored_event(hot)), (cold.pid, stored_event(cold)))
    await indexer.wait_total(2)

    client = AsyncOpenSearch(hosts=[indexer_settings.opensearch.url])
    try:
        answer = await client.search(
            index="datasets",
            body={
                "query": {
                    "nested": {
                        "path": "scientificMetadataPairs",
                        "query": {
                            "bool": {
                                "filter": [
                                    {"term": {"scientificMetadataPairs.key": "sample.temperature"}},
                                    {"range": {"scientificMetadataPairs.number": {"gt": 300}}},
                                    {"term": {"scientificMetadataPairs.unit": "K"}},
                                ]
                            }
                        },
                    }
                }
            },
        )
        aliases = await client.indices.get_alias(name="datasets")
        mapping = await client.indices.get_mapping(index="datasets-v1")
    finally:
        await client.close()
    assert [hit["_id"] for hit in answer["hits"]["hits"]] == [hot.pid]
    assert list(aliases) == ["datasets-v1"]
    assert mapping["datasets-v1"]["mappings"]["dynamic"] in (False, "false")


async def test_restart_keeps_the_existing_index_and_its_documents(
    indexer: RunningIndexer,
    indexer_settings: Settings,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
) -> None:
    dataset = make_dataset()
    await indexer.produce((dataset.pid, stored_event(dataset)))
    await indexer.wait_total(1)

    second = create_app(indexer_settings)
    async with second.router.lifespan_context(second):
        page = await second.state.dataset_index.search({"query": {"match_all": {}}})
        ready = (await indexer.http.get("/readyz")).json()
    assert page.total == 1
    assert ready["checks"]["opensearch"] == "ok"
