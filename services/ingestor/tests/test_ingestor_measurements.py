"""Measurement grouping (DESY #984): several runs, one dataset, statistics per numeric key."""

from __future__ import annotations

import contextlib

import pytest

from scicat_ingestor.app import create_app
from scicat_ingestor.measurements import MeasurementView, RunSample, aggregated_metadata
from scicat_pipeline.testing import wait_for
from scicat_schemas.documents import DATASET_COLLECTION, ORIG_DATABLOCK_COLLECTION


def view(*metadata) -> MeasurementView:
    return MeasurementView("m1", [RunSample(f"scan_{n}", m) for n, m in enumerate(metadata)])


def test_numbers_and_quantities_become_count_min_max_mean() -> None:
    aggregated = aggregated_metadata(
        view(
            {"exposure": 0.1, "energy": {"value": 18.0, "unit": "keV"}, "sample": {"x": 1}},
            {"exposure": 0.3, "energy": {"value": 20.0, "unit": "keV"}, "sample": {"x": 3}},
        )
    )

    assert aggregated["exposure"] == {"count": 2, "min": 0.1, "max": 0.3, "mean": 0.2}
    energy = aggregated["energy"]
    assert {k: energy[k] for k in ("count", "min", "max", "mean", "unit", "value")} == {
        "count": 2,
        "min": 18.0,
        "max": 20.0,
        "mean": 19.0,
        "unit": "keV",
        "value": [18.0, 20.0],  # the range the runs span: a quantity unit-aware search finds
    }
    assert energy["unitSI"] == "kg*m**2/s**2"
    assert energy["valueSI"] == pytest.approx([18e3 * 1.602176634e-19, 20e3 * 1.602176634e-19])
    assert aggregated["sample"] == {"x": {"count": 2, "min": 1.0, "max": 3.0, "mean": 2.0}}
    assert aggregated["runs"] == ["scan_0", "scan_1"]


def test_quantities_in_different_units_are_aggregated_in_si() -> None:
    aggregated = aggregated_metadata(
        view({"d": {"value": 1, "unit": "mm"}}, {"d": {"value": 0.3, "unit": "cm"}})
    )

    assert aggregated["d"] == {
        "count": 2,
        "min": 0.001,
        "max": 0.003,
        "mean": 0.002,
        "unit": "m",
        "value": [0.001, 0.003],
        "valueSI": [0.001, 0.003],
        "unitSI": "m",
    }


def test_other_values_are_kept_when_runs_agree_and_listed_when_not() -> None:
    aggregated = aggregated_metadata(
        view({"sample": "LaB6", "mode": "fly", "ok": True}, {"sample": "LaB6", "mode": "step"})
    )

    assert aggregated["sample"] == "LaB6"
    assert aggregated["mode"] == {"values": ["fly", "step"]}
    assert aggregated["ok"] is True


def test_a_key_only_some_runs_have_counts_only_those() -> None:
    aggregated = aggregated_metadata(view({"t": 5}, {}, {"t": 7}))

    assert aggregated["t"]["count"] == 2
    assert aggregated["runs"] == ["scan_0", "scan_1", "scan_2"]


@contextlib.asynccontextmanager
async def grouping(settings):
    app = create_app(settings.model_copy(update={"measurement_key": "measurement"}))
    async with app.router.lifespan_context(app):
        yield


async def test_runs_of_one_measurement_become_one_dataset_with_statistics(
    settings, kafka_io, catalogue, acquisitions
) -> None:
    def run(run_id: str, energy: float, status: str = "success") -> list[bytes]:
        folder = f"/gpfs/current/raw/{run_id}"
        return [
            acquisitions.envelope(
                acquisitions.run_started(
                    run_id=run_id,
                    source_folder=folder,
                    metadata={"measurement": "m1", "energy": {"value": energy, "unit": "keV"}},
                )
            ),
            acquisitions.envelope(
                acquisitions.file_closed(run_id=run_id, path=f"{folder}/img.cbf", size=10)
            ),
            acquisitions.envelope(acquisitions.run_stopped(run_id=run_id, status=status)),
        ]

    async with grouping(settings):
        await kafka_io.produce(*run("scan_1", 18.0), key=b"scan_1")
        await kafka_io.produce(*run("scan_2", 20.0), key=b"scan_2")
        await kafka_io.produce(
            acquisitions.envelope(acquisitions.file_closed("lone.h5", run_id="solo")),
            key=b"solo",
        )

        async def measured():
            doc = await catalogue[DATASET_COLLECTION].find_one({"pid": "test/11012345/m1"})
            done = doc is not None and doc["numberOfFiles"] == 2
            return doc if done and doc["datasetStatus"] == "success" else None

        dataset = await wait_for(measured, what="the measurement with both runs")
        await wait_for(
            lambda: catalogue[DATASET_COLLECTION].find_one({"pid": "test/11012345/solo"}),
            what="the ungrouped run",
        )

    metadata = dataset["scientificMetadata"]
    energy = {k: v for k, v in metadata["energy"].items() if k not in ("valueSI", "unitSI")}
    assert energy == {
        "count": 2,
        "min": 18.0,
        "max": 20.0,
        "mean": 19.0,
        "unit": "keV",
        "value": [18.0, 20.0],
    }
    assert sorted(metadata["runs"]) == ["scan_1", "scan_2"]
    assert dataset["datasetName"] == "m1"
    assert dataset["sourceFolder"] == "/gpfs/current/raw"
    block = await catalogue[ORIG_DATABLOCK_COLLECTION].find_one({"datasetId": dataset["pid"]})
    assert sorted(f["path"] for f in block["dataFileList"]) == [
        "scan_1/img.cbf",
        "scan_2/img.cbf",
    ]
    assert await catalogue[DATASET_COLLECTION].count_documents({}) == 2
