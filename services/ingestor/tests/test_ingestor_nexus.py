"""NeXus/HDF5 metadata by declarative mapping, and checksums, from small files written with h5py."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np
import pytest

from scicat_ingestor.file_reading import FileReader
from scicat_ingestor.nexus_metadata import (
    FileContext,
    MappingError,
    MetadataMapping,
    extract,
    load_mappings,
    select_mapping,
)
from scicat_ingestor.settings import DEFAULT_MAPPINGS_DIR
from scicat_schemas.events import Checksum, FileClosedData

MAPPING = {
    "name": "test",
    "selector": {"instruments": ["P08"], "file_names": ["*.nxs"]},
    "fields": {
        "energy": {"hdf5": "/entry/instrument/monochromator/energy"},
        "sample.name": {"hdf5": "/entry/sample/name"},
        "distance": {"hdf5": "/entry/instrument/detector/distance", "unit": "mm"},
        "missing": {"hdf5": "/entry/nothing/here"},
        "facility": {"value": "PETRA III"},
        "scan": {"template": "{beamtime_id}/{run_id}/{file_name}"},
    },
}


def write_nexus(path: Path) -> Path:
    """A small NeXus file as the P08 writer makes them (only the fields the tests read)."""
    with h5py.File(path, "w") as nexus:
        entry = nexus.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry["title"] = "strain scan"
        energy = entry.create_dataset("instrument/monochromator/energy", data=np.float64(18.0))
        energy.attrs["units"] = "keV"
        entry["instrument/monochromator/wavelength"] = np.float64(0.6888)
        entry["instrument/monochromator/wavelength"].attrs["units"] = "Å"
        entry["instrument/detector/distance"] = np.array([1200.5])
        entry["sample/name"] = np.bytes_(b"LaB6")
        entry["sample/temperature"] = np.float32(295.0)
        entry["sample/temperature"].attrs["units"] = np.bytes_(b"K")
        entry["instrument/detector/count_time"] = np.arange(5000.0)
    return path


def context(path: Path) -> FileContext:
    return FileContext(path=str(path), run_id="scan_0042", beamtime_id="11012345", instrument="P08")


def test_mapping_reads_values_units_literals_and_templates(tmp_path) -> None:
    path = write_nexus(tmp_path / "scan_0042.nxs")

    extracted = extract(MetadataMapping.model_validate(MAPPING), context(path))

    assert extracted.metadata == {
        "energy": {"value": 18.0, "unit": "keV"},
        "sample": {"name": "LaB6"},
        "distance": {"value": 1200.5, "unit": "mm"},
        "facility": "PETRA III",
        "scan": "11012345/scan_0042/scan_0042.nxs",
    }
    [issue] = extracted.issues
    assert (issue.key, issue.source) == ("missing", "nexus")
    assert "/entry/nothing/here" in issue.problem


def test_file_that_is_not_hdf5_is_one_issue_not_a_failure(tmp_path) -> None:
    path = tmp_path / "broken.nxs"
    path.write_bytes(b"not an HDF5 file")

    extracted = extract(MetadataMapping.model_validate(MAPPING), context(path))

    assert extracted.metadata == {}
    assert len(extracted.issues) == 1
    assert "could not be read as HDF5" in extracted.issues[0].problem


def test_shipped_p08_mapping_reads_a_p08_file(tmp_path) -> None:
    path = write_nexus(tmp_path / "scan.nxs")
    mappings = load_mappings(DEFAULT_MAPPINGS_DIR)
    mapping = select_mapping(mappings, instrument="p08", path=str(path))
    assert mapping is not None

    extracted = extract(mapping, context(path))

    assert extracted.metadata["wavelength"] == {"value": 0.6888, "unit": "Å"}
    assert extracted.metadata["sample"]["temperature"] == {"value": 295.0, "unit": "K"}
    assert extracted.metadata["title"] == "strain scan"
    too_long = [i for i in extracted.issues if i.key == "detector.exposure_time"]
    assert "5000 values" in too_long[0].problem


def test_selector_matches_instrument_and_file_name() -> None:
    mappings = [MetadataMapping.model_validate(MAPPING)]

    assert select_mapping(mappings, instrument="P08", path="/d/a.nxs") is not None
    assert select_mapping(mappings, instrument="P08", path="/d/a.cbf") is None
    assert select_mapping(mappings, instrument="P10", path="/d/a.nxs") is None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("name: x\nfields: {a: {hdf5: /a, value: 1}}\n", "exactly one"),
        ("name: x\nfields: {a: {template: '{nope}'}}\n", "placeholders"),
        ("name: x\nfields: {a: {hdf5: /a}}\nextra: 1\n", "extra"),
        ("name: [unclosed\n", "not usable"),
        ("name: x\nfields: {a..b: {value: 1}}\n", "non-empty"),
        ("name: x\nfields: {$where: {value: 1}}\n", "'$'"),
    ],
)
def test_bad_mapping_file_stops_start_up_naming_the_file(tmp_path, content, problem) -> None:
    (tmp_path / "bad.yaml").write_text(content)

    with pytest.raises(MappingError, match=r"bad\.yaml") as raised:
        load_mappings(tmp_path)

    assert problem in str(raised.value)


def closed(path: Path, **overrides) -> FileClosedData:
    fields = {
        "path": str(path),
        "size": path.stat().st_size if path.exists() else 1,
        "closed_at": datetime(2024, 5, 14, tzinfo=UTC),
        "run_id": "scan_0042",
        "beamtime_id": "11012345",
        "instrument": "P08",
    }
    return FileClosedData(**(fields | overrides))


async def test_reader_adds_a_blake2b_checksum_when_the_producer_sent_none(tmp_path) -> None:
    path = tmp_path / "img.cbf"
    path.write_bytes(b"x" * 100_000)

    reading = await FileReader(compute_checksums=True, mappings=[]).read(closed(path))

    assert reading.data.checksum == Checksum(
        algorithm="blake2b", value=hashlib.blake2b(path.read_bytes()).hexdigest()
    )


async def test_reader_keeps_the_producers_checksum_and_respects_the_switch(tmp_path) -> None:
    path = tmp_path / "img.cbf"
    path.write_bytes(b"data")
    sent = Checksum(algorithm="md5", value="abc")

    kept = await FileReader(True, []).read(closed(path, checksum=sent))
    off = await FileReader(False, []).read(closed(path))
    changed_on_disk = await FileReader(True, []).read(closed(path, size=999))
    unreadable = await FileReader(True, []).read(closed(tmp_path / "gone.cbf"))

    assert kept.data.checksum == sent
    assert off.data.checksum is None
    assert changed_on_disk.data.checksum is None
    assert unreadable.data.checksum is None


async def test_event_metadata_wins_over_the_files(tmp_path) -> None:
    path = write_nexus(tmp_path / "scan.nxs")
    reader = FileReader(False, [MetadataMapping.model_validate(MAPPING)])

    reading = await reader.read(closed(path, metadata={"sample": {"name": "Si"}, "x": 1}))

    assert reading.data.metadata["sample"] == {"name": "Si"}
    assert reading.data.metadata["energy"] == {"value": 18.0, "unit": "keV"}
    assert reading.data.metadata["x"] == 1
    assert [i.key for i in reading.issues] == ["missing"]


def test_dangling_link_is_one_issue_and_the_other_fields_are_read(tmp_path) -> None:
    path = write_nexus(tmp_path / "scan.nxs")
    with h5py.File(path, "a") as nexus:
        nexus["entry/linked"] = h5py.ExternalLink("elsewhere.h5", "/entry/data")
    mapping = MetadataMapping.model_validate(
        {
            "name": "x",
            "fields": {"linked": {"hdf5": "/entry/linked"}, "title": {"hdf5": "/entry/title"}},
        }
    )

    extracted = extract(mapping, context(path))

    assert extracted.metadata == {"title": "strain scan"}
    assert [i.key for i in extracted.issues] == ["linked"]
