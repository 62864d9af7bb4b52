"""Where a dataset's files are: its `sourceFolder` and file paths relative to it.

SciCat stores each file's path relative to the dataset's `sourceFolder`, so the folder must hold
every file. Producers send absolute paths; the folder is the one a producer names, or the folder
of the first file, and it widens to the common parent when a file lies outside it. Paths are POSIX
and compared lexically (`/a/./b` is `/a/b`); symbolic links are not resolved (no I/O here).

`UNKNOWN_FOLDER` (the empty string) is the folder of a dataset that has no file and whose producer
named none yet; the first file decides it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from functools import lru_cache

UNKNOWN_FOLDER = ""


class InvalidPath(ValueError):
    """A path that cannot be placed in the catalogue; the message names it."""


def normalise_absolute(path: str, *, what: str) -> str:
    """`path` in canonical form (`/a/b`), or `InvalidPath` if it is relative or the root."""
    if not path.startswith("/"):
        raise InvalidPath(f"{what} {path!r} is not absolute; send the full path starting with '/'")
    if "\x00" in path:
        raise InvalidPath(f"{what} {path!r} contains a NUL character")
    return _canonical(path)


@lru_cache(maxsize=4096)
def _canonical(path: str) -> str:
    """`posixpath.normpath` of an absolute path, remembered (a memo of a pure function): an
    event's file path is normalised by the batch and twice by the domain, and its dataset's
    folder at every event, ~1 µs each."""
    return "/" + posixpath.normpath(path).lstrip("/")


def normalise_file_path(path: str) -> str:
    """A file's canonical absolute path; the root folder itself is not a file."""
    canonical = normalise_absolute(path, what="file path")
    if canonical == "/":
        raise InvalidPath(f"file path {path!r} names the root folder, not a file")
    return canonical


def folder_holding(requested: str, file_paths: Iterable[str]) -> str:
    """The narrowest folder that is `requested` or a parent of it and holds every file.

    With no `requested` folder (`UNKNOWN_FOLDER`) it is the common folder of the files, and it
    stays unknown while there are no files.
    """
    if requested != UNKNOWN_FOLDER:
        prefix = requested.rstrip("/") + "/"
        paths = list(file_paths)
        if all(path.startswith(prefix) for path in paths):
            return requested
        file_paths = paths
    folders = [posixpath.dirname(path) for path in file_paths]
    if requested != UNKNOWN_FOLDER:
        folders.append(requested)
    if not folders:
        return UNKNOWN_FOLDER
    return posixpath.commonpath(folders)


def relative_to(folder: str, path: str) -> str:
    """`path` relative to `folder`, which must hold it (see `folder_holding`)."""
    prefix = folder if folder.endswith("/") else folder + "/"
    if not path.startswith(prefix):
        raise ValueError(f"{path!r} is not inside {folder!r}")
    return path[len(prefix) :]


def absolute_in(folder: str, relative_path: str) -> str:
    """The inverse of `relative_to`."""
    return posixpath.join(folder, relative_path)
