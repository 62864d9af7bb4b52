"""The file lists this ingestor last committed, so a batch need not reload a long one.

A run's events arrive over many batches; each batch used to read back and validate the run's
whole file list (every part) before applying a few hundred more files to it: O(files) per
batch, ~0.3 ms per event for runs of 20,000 files. The batch store now reuses the file list it
committed itself, when the dataset it loads (always loaded, it is small) is exactly the dataset
it committed with that list: every change to a file list through the pipeline or SciCat's API
also changes its dataset (`pipelineRevision`, or `size`/`numberOfFiles`/`updatedAt`), so a
dataset unchanged since our commit means a file list unchanged too. Anything else (another
ingestor, the doi-minter, an unknown dataset) reloads. Only what a committed transaction wrote is
remembered, after the commit.

Bounded by the files held (`max_files`), least recently used first out.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from scicat_ingestor.catalogue_entry import CatalogueEntry
from scicat_ingestor.datablock_parts import StoredParts
from scicat_schemas.documents import Dataset, OrigDatablock

DEFAULT_MAX_FILES = 200_000
"""~100 MB of file records at most."""


@dataclass
class RecentEntries:
    max_files: int = DEFAULT_MAX_FILES
    _entries: OrderedDict[str, tuple[CatalogueEntry, StoredParts]] = field(
        default_factory=OrderedDict
    )
    _files: int = 0

    def file_list_of(self, dataset: Dataset) -> tuple[OrigDatablock | None, StoredParts] | None:
        """The file list committed with exactly `dataset` (as loaded now), and its layout."""
        remembered = self._entries.get(dataset.pid)
        if remembered is None or remembered[0].dataset != dataset:
            return None
        self._entries.move_to_end(dataset.pid)
        entry, parts = remembered
        return entry.datablock, parts

    def remember(self, entry: CatalogueEntry, parts: StoredParts) -> None:
        """`entry` as committed: the dataset as written, its file list."""
        self._forget(entry.pid)
        self._entries[entry.pid] = (entry, parts)
        self._files += _files(entry)
        while self._files > self.max_files and self._entries:
            self._forget(next(iter(self._entries)))

    def _forget(self, pid: str) -> None:
        gone = self._entries.pop(pid, None)
        if gone is not None:
            self._files -= _files(gone[0])


def _files(entry: CatalogueEntry) -> int:
    return 0 if entry.datablock is None else len(entry.datablock.dataFileList)
