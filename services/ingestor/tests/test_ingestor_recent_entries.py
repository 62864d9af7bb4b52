"""The file lists an ingestor remembers having committed: exact dataset match, bounded size."""

from __future__ import annotations

from datetime import UTC, datetime

from scicat_ingestor.catalogue_entry import CatalogueEntry
from scicat_ingestor.datablock_parts import StoredParts, written
from scicat_ingestor.domain import apply_event
from scicat_ingestor.recent_entries import RecentEntries
from scicat_ingestor.settings import Settings
from scicat_schemas.events import FileClosedData

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)
POLICY = Settings(pid_prefix="test").policy()


def entry(run: str, files: int) -> CatalogueEntry:
    state = None
    for n in range(files):
        data = FileClosedData(
            run_id=run,
            beamtime_id="11012345",
            instrument="P08",
            path=f"/gpfs/current/raw/{run}/f{n}.cbf",
            size=10,
            closed_at=NOW,
        )
        state = apply_event(data, state, policy=POLICY, now=NOW) or state
    assert state is not None
    return state


def test_a_file_list_is_given_back_only_for_the_very_dataset_it_was_committed_with() -> None:
    recent = RecentEntries()
    committed = entry("scan_1", 3)
    parts = written(committed.datablock, 1000)
    recent.remember(committed, parts)

    assert recent.file_list_of(committed.dataset) == (committed.datablock, parts)
    published = committed.dataset.model_copy(update={"isPublished": True})
    assert recent.file_list_of(published) is None
    assert recent.file_list_of(entry("scan_2", 1).dataset) is None
    assert parts == StoredParts((committed.datablock.id,), canonical=True)


def test_the_least_recently_used_lists_go_first_beyond_the_file_budget() -> None:
    recent = RecentEntries(max_files=5)
    first, second, third = entry("scan_1", 2), entry("scan_2", 2), entry("scan_3", 2)
    for committed in (first, second):
        recent.remember(committed, written(committed.datablock, 1000))
    assert recent.file_list_of(first.dataset) is not None  # now the most recently used

    recent.remember(third, written(third.datablock, 1000))

    assert recent.file_list_of(second.dataset) is None
    assert recent.file_list_of(first.dataset) is not None
    assert recent.file_list_of(third.dataset) is not None
    recent.remember(entry("scan_4", 9), StoredParts((), canonical=True))
    assert all(recent.file_list_of(e.dataset) is None for e in (first, third))
