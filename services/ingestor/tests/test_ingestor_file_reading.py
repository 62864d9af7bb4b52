"""Reading a batch's files: checksums where the file is readable, the event as sent elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scicat_ingestor.file_reading import FileReader, FileReading
from scicat_schemas.events import FileClosedData


def _closed(path: Path, size: int) -> FileClosedData:
    return FileClosedData.model_validate(
        {
            "beamtime_id": "11019001",
            "run_id": "scan_001",
            "instrument": "p08",
            "path": str(path),
            "size": size,
            "closed_at": "2026-12-06T12:00:00Z",
        }
    )


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_files_in_a_folder_that_does_not_exist_are_not_looked_at_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, concurrency: int
) -> None:
    """An ingestor without the beamline's file system mounted asks once per folder, not twice
    per file; a readable file in the same batch still gets its checksum."""
    present = tmp_path / "scan_001"
    present.mkdir()
    (present / "a.h5").write_bytes(b"a" * 10)
    absent = tmp_path / "not-mounted" / "scan_002"
    events = [_closed(absent / f"img_{n}.cbf", 7) for n in range(6)]
    events.insert(3, _closed(present / "a.h5", 10))
    looked_at: list[str] = []
    real_isfile, real_isdir = os.path.isfile, os.path.isdir

    def isfile(path: str) -> bool:
        looked_at.append(path)
        return real_isfile(path)

    def isdir(path: str) -> bool:
        looked_at.append(path)
        return real_isdir(path)

    monkeypatch.setattr(os.path, "isfile", isfile)
    monkeypatch.setattr(os.path, "isdir", isdir)
    readings = await FileReader(compute_checksums=True, mappings=[]).read_many(
        events, concurrency=concurrency
    )

    assert all(isinstance(r, FileReading) for r in readings)
    checksums = [r.data.checksum for r in readings if isinstance(r, FileReading)]
    assert [c is not None for c in checksums] == [False] * 3 + [True] + [False] * 3
    assert not any(path.endswith(".cbf") for path in looked_at)
    assert looked_at.count(str(absent)) == 1
    assert [r.data for r in readings if isinstance(r, FileReading)][:3] == events[:3]
