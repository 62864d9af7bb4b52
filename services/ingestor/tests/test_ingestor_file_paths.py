"""Source folders and relative paths."""

from __future__ import annotations

import pytest

from scicat_ingestor.file_paths import (
    UNKNOWN_FOLDER,
    InvalidPath,
    absolute_in,
    folder_holding,
    normalise_absolute,
    relative_to,
)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("/a/b/", "/a/b"), ("//a//./b", "/a/b"), ("/a/x/../b", "/a/b"), ("/", "/")],
)
def test_absolute_paths_are_made_canonical(raw, canonical) -> None:
    assert normalise_absolute(raw, what="path") == canonical


def test_relative_path_is_refused() -> None:
    with pytest.raises(InvalidPath, match="not absolute"):
        normalise_absolute("a/b", what="path")


def test_requested_folder_is_kept_while_it_holds_every_file() -> None:
    assert folder_holding("/data/run", ["/data/run/a.h5", "/data/run/x/b.h5"]) == "/data/run"


def test_folder_widens_to_the_common_parent_of_outside_files() -> None:
    assert folder_holding("/data/run", ["/data/other/a.h5"]) == "/data"


def test_file_named_like_its_folder_is_not_inside_it() -> None:
    assert folder_holding("/data/run", ["/data/run"]) == "/data"


def test_folder_stays_unknown_without_a_request_or_files() -> None:
    assert folder_holding(UNKNOWN_FOLDER, []) == UNKNOWN_FOLDER
    assert folder_holding(UNKNOWN_FOLDER, ["/d/a/1", "/d/b/2"]) == "/d"


def test_relative_and_absolute_paths_are_inverse() -> None:
    for folder, path in [("/data/run", "/data/run/x/a.h5"), ("/", "/a.h5")]:
        assert absolute_in(folder, relative_to(folder, path)) == path


def test_relative_to_refuses_a_sibling_folder_with_the_same_prefix() -> None:
    with pytest.raises(ValueError, match="not inside"):
        relative_to("/data/run", "/data/run2/a.h5")
