"""A dataset and its file list as the catalogue holds them, and the file-list rules. Pure.

The file list changes for its own reasons (paths relative to `sourceFolder`, a folder that widens
to hold every file, sizes that always follow the list), apart from the event rules in `domain`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cachetools import LRUCache

from scicat_ingestor.file_paths import (
    UNKNOWN_FOLDER,
    absolute_in,
    folder_holding,
    normalise_absolute,
    relative_to,
)
from scicat_ingestor.model_copies import copied, update_in_place
from scicat_ingestor.scientific_metadata import INT64_MAX
from scicat_schemas.documents import DataFile, Dataset, OrigDatablock
from scicat_schemas.events import FileClosedData


class InvalidAcquisition(ValueError):
    """An event that can never be applied; the message says what to fix at the producer."""


@dataclass(frozen=True)
class CatalogueEntry:
    """What the catalogue holds for one dataset: the Dataset and, once it has files, its datablock.

    `datablock.dataFileList` paths are relative to `dataset.sourceFolder`, as SciCat stores them.
    """

    dataset: Dataset
    datablock: OrigDatablock | None = None

    @property
    def pid(self) -> str:
        return self.dataset.pid

    @property
    def revision(self) -> int:
        return self.dataset.pipelineRevision


def catalogue_time(moment: datetime) -> datetime:
    """`moment` as the catalogue stores it: UTC, millisecond precision (BSON dates).

    Normalising here means a state read back from MongoDB compares equal to the state computed
    from the event, so a repeated event is recognised as "no change". Called a few times per
    event, so no `datetime.replace` (~1.6 µs on Python 3.11, against ~0.3 for the arithmetic).
    """
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    extra = utc.microsecond % 1000
    return utc if extra == 0 else utc - _SUB_MILLISECOND[extra]


_SUB_MILLISECOND = [timedelta(microseconds=n) for n in range(1000)]


def stored_folder(dataset: Dataset) -> str:
    if dataset.sourceFolder == UNKNOWN_FOLDER:
        return UNKNOWN_FOLDER
    if not dataset.sourceFolder.startswith("/"):
        raise InvalidAcquisition(
            f"stored dataset {dataset.pid!r} has sourceFolder {dataset.sourceFolder!r}, which is "
            "not an absolute path; repair the stored dataset, then replay the event"
        )
    return normalise_absolute(dataset.sourceFolder, what=f"stored sourceFolder of {dataset.pid!r}")


REPORT_FIELD = "pipelineEvent"
"""On a file record made by a report carrying metadata: that report's identity (CloudEvent
`source` + `id`), so a copy of it produced again is recognised (`DEDUPLICATION=offsets`): its
metadata, merged again, could replace newer values."""


def closed_file(
    previous: DataFile | None,
    path: str,
    data: FileClosedData,
    *,
    recorded_as: str | None = None,
    report: str | None = None,
) -> DataFile:
    """The file as now known; an unchanged file keeps its first record (and a known checksum).
    A new record carries `recorded_as` (its path relative to the folder, when known), else
    `path`, and names `report` (the event's identity) when the report carries metadata."""
    if data.size > INT64_MAX:
        raise InvalidAcquisition(
            f"file {path!r} has size {data.size}, more than the catalogue can store"
        )
    checksum = data.checksum
    if previous is not None and previous.size == data.size:
        if checksum is None or (previous.chk, previous.chkAlg) == (
            checksum.value,
            checksum.algorithm,
        ):
            return previous
    record = DataFile(
        path=path if recorded_as is None else recorded_as,
        size=data.size,
        time=catalogue_time(data.closed_at),
        chk=checksum.value if checksum else None,
        chkAlg=checksum.algorithm if checksum else None,
    )
    if report is not None and data.metadata:
        assert record.__pydantic_extra__ is not None  # `Document` keeps extra fields
        record.__pydantic_extra__[REPORT_FIELD] = report
    return record


def report_of(record: DataFile) -> str | None:
    """The identity of the report that made `record`, if it carried metadata (`REPORT_FIELD`)."""
    extra = record.__pydantic_extra__
    value = None if extra is None else extra.get(REPORT_FIELD)
    return value if isinstance(value, str) else None


def absolute_files(entry: CatalogueEntry) -> dict[str, DataFile]:
    """The stored files keyed by absolute path, in stored order, records as stored.

    Records keep their stored (relative) path: `with_files` copies only those whose relative
    path changes, so a file event costs one new record, not a copy of the whole list. A stored
    entry written by someone else may be inconsistent (a relative `sourceFolder`); that is
    refused with a reason rather than retried forever.
    """
    if entry.datablock is None:
        return {}
    files: dict[str, DataFile] = {}
    for stored in entry.datablock.dataFileList:
        path = absolute_in(entry.dataset.sourceFolder, stored.path)
        if not path.startswith("/"):
            raise InvalidAcquisition(
                f"stored dataset {entry.pid!r} lists file {stored.path!r} under sourceFolder "
                f"{entry.dataset.sourceFolder!r}, which is not an absolute path; repair the "
                "stored dataset, then replay the event"
            )
        files[path] = stored
    return files


def with_files(
    dataset: Dataset,
    datablock: OrigDatablock | None,
    files: dict[str, DataFile],
    requested_folder: str,
) -> CatalogueEntry:
    """Place `files` under the folder that holds them all; sizes follow from the file list."""
    folder = folder_holding(requested_folder, files)
    file_list = [_placed(record, relative_to(folder, path)) for path, record in files.items()]
    size = sum(record.size for record in file_list)
    if size > INT64_MAX:
        raise InvalidAcquisition(
            f"dataset {dataset.pid!r} would hold {size} bytes, more than the catalogue can store"
        )
    dataset = copied(
        dataset, {"sourceFolder": folder, "size": size, "numberOfFiles": len(file_list)}
    )
    if not file_list and datablock is None:
        return CatalogueEntry(dataset=dataset)
    block_fields: dict[str, Any] = _owned_by(dataset) | {
        "size": size,
        "chkAlg": _common_algorithm(file_list),
        "dataFileList": file_list,
    }
    if datablock is None:
        datablock = OrigDatablock.model_validate(
            {"_id": OrigDatablock.id_for(dataset.pid), **block_fields}
        )
    else:
        datablock = copied(datablock, block_fields)
    return CatalogueEntry(dataset=dataset, datablock=datablock)


def with_files_kept(
    dataset: Dataset, changes: dict[str, Any], datablock: OrigDatablock | None, folder: str
) -> CatalogueEntry | None:
    """`with_files` (of `dataset` with `changes`) for an event that closes no file — a start or
    a stop — when `folder` is the dataset's own, in O(1): the list stays as stored. `None` when
    the folder may change or the dataset has no file list (then `with_files` decides).

    A measurement's list holds every file of its runs, and each run's start and stop came
    through `with_files`, which placed the whole list again per event. Relies on what
    `with_closed_file` relies on (a stored list that disagrees with its dataset is recomputed).
    """
    if datablock is None or dataset.sourceFolder != folder:
        return None
    if (dataset.size, dataset.numberOfFiles) != (datablock.size, len(datablock.dataFileList)):
        return None
    dataset = copied(dataset, changes)
    owned_by = _owned_by(dataset)
    if any(getattr(datablock, name) != value for name, value in owned_by.items()):
        datablock = copied(datablock, owned_by)
    return CatalogueEntry(dataset=dataset, datablock=datablock)


def with_closed_file(
    dataset: Dataset,
    changes: dict[str, Any],
    datablock: OrigDatablock | None,
    folder: str,
    path: str,
    data: FileClosedData,
    *,
    extend: bool = False,
    report: str | None = None,
    newest_stands: bool = False,
) -> CatalogueEntry | None:
    """`with_files` (of `dataset` with `changes`) for one closed file that lies in the dataset's
    folder, in O(1) per unchanged file: the record is replaced or appended, the sizes updated by
    its difference; `None` when the folder would change or the dataset has no file list yet
    (then `with_files` decides).

    `newest_stands`: raise `StaleReport` for a report older than the file's record.

    `extend`: the caller owns `datablock` and its list (nothing else holds the state they belong
    to, which the result supersedes), so a new file is appended to the list in place instead of
    to a copy (copying made each file of a run of N files cost O(N)), and the datablock is
    updated in place. Nothing fails after the append.

    Relies on what `with_files` keeps true: the datablock's `size` is the sum of its list; a
    stored state whose dataset and datablock disagree (edited by hand) is left to `with_files`,
    which recomputes and so repairs it.
    """
    prefix = folder + "/"
    if datablock is None or dataset.sourceFolder != folder or not path.startswith(prefix):
        return None
    records = datablock.dataFileList
    if (dataset.size, dataset.numberOfFiles) != (datablock.size, len(records)):
        return None
    relative = path[len(prefix) :]
    positions = _positions_of(records)
    index = _position(records, positions, relative)
    previous = None if index is None else records[index]
    if newest_stands:
        check_not_stale(previous, data)
    record = _placed(
        closed_file(previous, path, data, recorded_as=relative, report=report), relative
    )
    size = datablock.size - (0 if previous is None else previous.size) + record.size
    if size > INT64_MAX:
        raise InvalidAcquisition(
            f"dataset {dataset.pid!r} would hold {size} bytes, more than the catalogue can store"
        )
    if index is None:
        positions[relative] = len(records)
        if extend:
            records.append(record)
            file_list = records
        else:
            file_list = [*records, record]
    else:
        file_list = [*records[:index], record, *records[index + 1 :]]
    _POSITIONS[id(file_list)] = (file_list, positions)
    dataset = copied(dataset, changes | {"size": size, "numberOfFiles": len(file_list)})
    block_fields: dict[str, Any] = _owned_by(dataset) | {
        "size": size,
        "chkAlg": _algorithm_after(datablock.chkAlg, previous, record, file_list),
        "dataFileList": file_list,
    }
    if file_list is records:
        # Extended in place: the datablock holding the list is the caller's to drop as well,
        # so it is updated rather than copied (~2 µs per file event of a run).
        update_in_place(datablock, block_fields)
        return CatalogueEntry(dataset=dataset, datablock=datablock)
    return CatalogueEntry(dataset=dataset, datablock=copied(datablock, block_fields))


_POSITIONS: LRUCache[int, tuple[list[DataFile], dict[str, int]]] = LRUCache(maxsize=64)
"""Recent file lists (by `id`, holding the list so the id is not reused) and where each path
sits in them: without it, finding a closed file's record scans the list, so a run of N files
costs O(N²) (a 10,000-file run averaged 416 µs per event). A memo like `functools.lru_cache`,
not state: a miss rebuilds it from the list.

One `dict` is shared along a lineage of lists (each new list is its parent plus one appended or
replaced record), so keeping it costs O(1) per event. It is a hint, exact when it matters: it
holds every path of every list that uses it (keys are only added), so a path missing from it is
in none of them; a position is trusted only when that list has that path there (two lists
derived from one parent may have placed different paths at the same position), otherwise the list
is searched."""


class StaleReport(Exception):
    """A `file.closed` older than the file's record: the file changed after this report (events
    out of order, or one produced again later), so the newest report stands and this one changes
    nothing. Raised where the record is found anyway (`with_closed_file`), not looked up apart."""


def check_not_stale(previous: DataFile | None, data: FileClosedData) -> None:
    """`StaleReport` if `data` reports the file `previous` records as it was before."""
    if previous is not None and previous.time > catalogue_time(data.closed_at):
        raise StaleReport


def recorded_file(entry: CatalogueEntry, path: str) -> DataFile | None:
    """The stored record of the file at absolute `path`, if the list has one (O(1) for a file
    inside the dataset's folder, through the same memo as `with_closed_file`)."""
    block = entry.datablock
    if block is None:
        return None
    folder = entry.dataset.sourceFolder
    prefix = folder + "/"
    if folder != UNKNOWN_FOLDER and path.startswith(prefix):
        records = block.dataFileList
        index = _position(records, _positions_of(records), path[len(prefix) :])
        return None if index is None else records[index]
    return absolute_files(entry).get(path)


def _positions_of(records: list[DataFile]) -> dict[str, int]:
    remembered = _POSITIONS.get(id(records))
    if remembered is not None and remembered[0] is records:
        return remembered[1]
    positions: dict[str, int] = {}
    for n, record in enumerate(records):
        positions.setdefault(record.path, n)
    _POSITIONS[id(records)] = (records, positions)
    return positions


def _position(records: list[DataFile], positions: dict[str, int], relative: str) -> int | None:
    """The position of `relative` in `records` (the first, as a scan finds it), or None."""
    hint = positions.get(relative)
    if hint is None:
        return None
    if hint < len(records) and records[hint].path == relative:
        return hint
    return next((n for n, record in enumerate(records) if record.path == relative), None)


def _owned_by(dataset: Dataset) -> dict[str, Any]:
    """The datablock's fields that are its dataset's: whose it is and who may see it."""
    return {
        "datasetId": dataset.pid,
        "ownerGroup": dataset.ownerGroup,
        "accessGroups": dataset.accessGroups,
    }


def _placed(record: DataFile, relative_path: str) -> DataFile:
    if record.path == relative_path:
        return record
    return copied(record, {"path": relative_path})


def _algorithm_after(
    common: str | None, previous: DataFile | None, record: DataFile, files: list[DataFile]
) -> str | None:
    """`_common_algorithm(files)` after `previous` (None: appended) became `record`, from the
    list's earlier `common` algorithm where that tells it, as in a run whose files all carry the
    same algorithm: scanning the list per file event made such a run O(N²) (a 20,000-file run
    with checksums cost ~1.2 ms per event). `common` is trusted as `with_closed_file` trusts
    the datablock's size."""
    if record.chkAlg == (None if previous is None else previous.chkAlg):
        return common  # the same algorithms, counted with repeats
    if common is not None and record.chkAlg == common:
        return common  # every other algorithm in the list was `common` already
    return _common_algorithm(files)


def _common_algorithm(files: list[DataFile]) -> str | None:
    """The checksum algorithm of the datablock: the one all checksummed files share, if any."""
    algorithms = {record.chkAlg for record in files if record.chkAlg}
    return algorithms.pop() if len(algorithms) == 1 else None
