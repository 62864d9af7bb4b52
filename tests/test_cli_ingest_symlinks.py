"""`scicat-pipeline ingest --follow-symlinks`: linked files and directories, once each, no loops."""

from __future__ import annotations

from pathlib import Path

import pytest

from scicat_pipeline.commands.ingest import find_runs


@pytest.fixture
def linked_tree(tmp_path: Path) -> Path:
    """raw/scan_001/a.cbf; raw/scan_001/b.cbf → elsewhere/b.cbf; raw/scan_002 → elsewhere/scan;
    raw/scan_001/loop → raw (a loop); raw/scan_001/gone.cbf → nothing (dangling)."""
    raw = tmp_path / "raw"
    scan = raw / "scan_001"
    scan.mkdir(parents=True)
    (scan / "a.cbf").write_bytes(b"a" * 10)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "scan").mkdir(parents=True)
    (elsewhere / "b.cbf").write_bytes(b"b" * 20)
    (elsewhere / "scan" / "c.cbf").write_bytes(b"c" * 30)
    (scan / "b.cbf").symlink_to(elsewhere / "b.cbf")
    (raw / "scan_002").symlink_to(elsewhere / "scan", target_is_directory=True)
    (scan / "loop").symlink_to(raw, target_is_directory=True)
    (scan / "gone.cbf").symlink_to(tmp_path / "missing.cbf")
    return raw


def _files(raw: Path, *, follow: bool) -> dict[str, dict[str, int]]:
    return {
        run.run_id: {f.path.relative_to(raw).as_posix(): f.size for f in run.files}
        for run in find_runs([raw], follow_symlinks=follow)
    }


def test_links_are_skipped_by_default(linked_tree: Path) -> None:
    assert _files(linked_tree, follow=False) == {"scan_001": {"scan_001/a.cbf": 10}}


def test_following_takes_linked_files_under_the_link_path_and_walks_linked_directories_once(
    linked_tree: Path,
) -> None:
    assert _files(linked_tree, follow=True) == {
        "scan_001": {"scan_001/a.cbf": 10, "scan_001/b.cbf": 20},
        "scan_002": {"scan_002/c.cbf": 30},
    }
