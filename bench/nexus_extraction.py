"""NeXus extraction time per file: the shipped P08 mapping applied to small files written here.

Separate from the end-to-end run because the benchmark's events name files that do not exist
(the store and the pipeline are measured, not the file system).
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np

from scicat_ingestor.nexus_metadata import FileContext, extract, load_mappings, select_mapping
from scicat_ingestor.settings import DEFAULT_MAPPINGS_DIR


def nexus_extraction(count: int, folder: Path, *, beamtime: str, start: datetime) -> float:
    """Seconds per file to apply the shipped P08 mapping to a small NeXus file."""
    mappings = load_mappings(DEFAULT_MAPPINGS_DIR)
    paths = []
    for n in range(count):
        path = folder / f"scan_{n:04d}.nxs"
        with h5py.File(path, "w") as nexus:
            nexus["entry/title"] = f"scan {n}"
            nexus["entry/start_time"] = start.isoformat()
            energy = nexus.create_dataset("entry/instrument/monochromator/energy", data=18.0)
            energy.attrs["units"] = "keV"
            nexus["entry/sample/name"] = "LaB6"
            nexus["entry/instrument/detector/distance"] = np.float64(1200.0)
            nexus["entry/instrument/detector/count_time"] = np.float64(0.1)
        paths.append(path)
    mapping = select_mapping(mappings, instrument="P08", path=str(paths[0]))
    assert mapping is not None
    began = time.perf_counter()
    for path in paths:
        extract(mapping, FileContext(str(path), "scan", beamtime, "P08"))
    return (time.perf_counter() - began) / count
