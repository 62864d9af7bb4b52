"""The newest report of a file stands: an older `file.closed` arriving later changes nothing.

Reports come out of order across producers, and with `DEDUPLICATION=offsets` a report produced
again is applied again; either way the file's newest record must win, on the one-record path
(`with_closed_file`) and where the whole list is placed again (`with_files`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from scicat_ingestor.domain import CatalogueEntry, apply_event

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


def apply_all(policy, *events) -> CatalogueEntry:
    entry = None
    for data in events:
        entry = apply_event(data, entry, policy=policy, now=NOW) or entry
    assert entry is not None
    return entry


def test_a_report_older_than_the_files_record_changes_nothing(policy, acquisitions) -> None:
    """The newest report of a file stands: an older one arriving later (out of order, or
    produced again) is ignored whole, metadata included; a tie is applied."""
    newer = acquisitions.file_closed("a.h5", size=9, closed_at=acquisitions.at(20))
    entry = apply_all(policy, newer)

    older = acquisitions.file_closed(
        "a.h5", size=5, closed_at=acquisitions.at(10), metadata={"frame": 1}
    )
    tie = acquisitions.file_closed("a.h5", size=7, closed_at=acquisitions.at(20))

    assert apply_event(older, entry, policy=policy, now=NOW) is None
    tied = apply_event(tie, entry, policy=policy, now=NOW)
    assert tied is not None and tied.datablock is not None
    assert [(f.path, f.size) for f in tied.datablock.dataFileList] == [("a.h5", 7)]


def test_the_newest_report_stands_where_the_whole_file_list_is_placed_again(
    policy, acquisitions
) -> None:
    """Also off the one-record path: a file outside the folder (the folder widens), and a
    stored state whose dataset disagrees with its file list (recomputed)."""
    first = acquisitions.file_closed("a.h5", size=9, closed_at=acquisitions.at(20))
    outside = first.model_copy(update={"path": "/elsewhere/b.h5"})
    widened = apply_all(policy, first, outside)
    assert widened.datablock is not None and len(widened.datablock.dataFileList) == 2
    edited = CatalogueEntry(
        dataset=widened.dataset.model_copy(update={"size": 1}), datablock=widened.datablock
    )

    for entry, name in ((widened, "/elsewhere/b.h5"), (edited, first.path)):
        older = first.model_copy(
            update={"path": name, "size": 5, "closed_at": acquisitions.at(10), "metadata": {"x": 1}}
        )
        assert apply_event(older, entry, policy=policy, now=NOW) is None
    newer = first.model_copy(update={"size": 5, "closed_at": acquisitions.at(30)})
    assert apply_event(newer, edited, policy=policy, now=NOW) is not None
