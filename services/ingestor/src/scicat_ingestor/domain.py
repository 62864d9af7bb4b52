"""Acquisition events → a SciCat Dataset and its OrigDatablock. Pure: no I/O, no clock.

`apply_event(data, current, policy=..., now=...)` is the whole domain: given what is stored for a
dataset (or nothing) and one event payload, it returns the new state, or `None` when the event
changes nothing (a file closed twice, a repeated start). That "no change" answer is what keeps
`pipelineRevision` still when a producer repeats itself under a new event id.

Events of one run may arrive in any order a producer manages to send them: each one creates the
dataset if it is missing, a start never re-opens a stopped run, and the file list, the
`sourceFolder` and the sizes are recomputed from the files themselves. Later producers (ESS wrdn,
bluesky, ASAP::O) are adapters that emit the same payloads; run grouping changes
`IngestPolicy.dataset_pid`; beamtime completion and unit normalisation add steps to `_update`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from scicat_ingestor.beamtimes import BeamtimeFacts
from scicat_ingestor.file_paths import (
    UNKNOWN_FOLDER,
    InvalidPath,
    absolute_in,
    folder_holding,
    normalise_absolute,
    normalise_file_path,
    relative_to,
)
from scicat_ingestor.quantities import UNIT_SOURCE, MetadataIssue, with_si_units
from scicat_ingestor.scientific_metadata import (
    INT64_MAX,
    UnstorableMetadata,
    check_storable,
    merge_scientific_metadata,
)
from scicat_schemas.documents import DataFile, Dataset, OrigDatablock
from scicat_schemas.events import (
    AcquisitionRef,
    DatasetStored,
    DatasetStoredData,
    FileClosedData,
    RunStartedData,
    RunStoppedData,
)

AcquisitionData = RunStartedData | FileClosedData | RunStoppedData

STATUS_OPEN = "open"
STATUS_TIMEOUT = "timeout"
"""A run with no `run.stopped` that stayed quiet for the configured period."""
STATUS_REASON_FIELD = "datasetStatusReason"
"""Why a run ended that way (`run.stopped` `reason`); SciCat has no field for it."""

UpdateStrategy = Literal["patch", "version"]

GROUP_TEMPLATE_FIELDS = frozenset({"beamtime_id", "beamline", "instrument", "facility"})
"""Placeholders a group template may use; `beamline` is the instrument lower-cased."""


class InvalidAcquisition(ValueError):
    """An event that can never be applied; the message says what to fix at the producer."""


@dataclass(frozen=True)
class IngestPolicy:
    """Facility conventions: how pids, locations and access groups are made."""

    pid_prefix: str
    facility: str
    owner_group_template: str
    access_group_templates: tuple[str, ...]
    update_strategy: UpdateStrategy = "patch"

    def dataset_pid(self, ref: AcquisitionRef) -> str:
        return f"{self.pid_prefix}/{ref.beamtime_id}/{ref.run_id}"

    def creation_location(self, ref: AcquisitionRef) -> str:
        return f"/{self.facility}/{ref.instrument}"

    def owner_group(self, ref: AcquisitionRef, beamline: str | None = None) -> str:
        return self.owner_group_template.format(**self._group_fields(ref, beamline))

    def access_groups(self, ref: AcquisitionRef, beamline: str | None = None) -> list[str]:
        fields = self._group_fields(ref, beamline)
        groups = (template.format(**fields) for template in self.access_group_templates)
        return list(dict.fromkeys(groups))

    def _group_fields(self, ref: AcquisitionRef, beamline: str | None) -> dict[str, str]:
        """`beamline` is the beamtime's when known, else the instrument's, lower-cased."""
        return {
            "beamtime_id": ref.beamtime_id,
            "beamline": (beamline or ref.instrument).lower(),
            "instrument": ref.instrument,
            "facility": self.facility,
        }


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
    from the event, so a repeated event is recognised as "no change".
    """
    utc = moment.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def apply_event(
    data: AcquisitionData,
    current: CatalogueEntry | None,
    *,
    policy: IngestPolicy,
    now: datetime,
    beamtime: BeamtimeFacts | None = None,
    issues: Sequence[MetadataIssue] = (),
) -> CatalogueEntry | None:
    """The state after `data`, with the revision bumped; `None` if `data` changes nothing.

    `beamtime` is the stored beamtime of the run, when known; `issues` are problems found while
    reading the file's metadata (NeXus), recorded on the dataset. Raises `InvalidAcquisition`
    for input no retry can fix (relative paths, unstorable metadata).
    """
    try:
        check_storable(data.metadata)
        proposed = _update(data, current or _new_entry(data, policy), issues)
        if beamtime is not None:
            proposed = with_beamtime(proposed, beamtime, policy)
    except (InvalidPath, UnstorableMetadata) as error:
        raise InvalidAcquisition(str(error)) from error
    if policy.update_strategy == "version" and _is_new_version(proposed, current):
        assert current is not None
        return _stamped(_next_version(proposed, current), now=catalogue_time(now), created=True)
    return _decided(proposed, current, now)


def complete_with_beamtime(
    current: CatalogueEntry, beamtime: BeamtimeFacts, *, policy: IngestPolicy, now: datetime
) -> CatalogueEntry | None:
    """A dataset ingested before its beamtime was known, completed; `None` if nothing changes."""
    return _decided(with_beamtime(current, beamtime, policy), current, now)


def close_quiet_run(
    current: CatalogueEntry | None, *, quiet_since: datetime, now: datetime
) -> CatalogueEntry | None:
    """An open run unchanged since `quiet_since`, closed with status `timeout`; else `None`.

    `endTime` is when its last file closed (or its last change, with no files). A later
    `run.stopped` still records the real status; a later file still joins the dataset.
    """
    if current is None or current.dataset.datasetStatus != STATUS_OPEN:
        return None
    dataset = current.dataset
    last_change = dataset.updatedAt or dataset.creationTime
    if last_change >= quiet_since:
        return None
    files = [] if current.datablock is None else current.datablock.dataFileList
    end = max((record.time for record in files), default=last_change)
    closed = dataset.model_copy(
        update={
            "datasetStatus": STATUS_TIMEOUT,
            "endTime": end,
            STATUS_REASON_FIELD: f"no run.stopped and no event since {last_change.isoformat()}",
        }
    )
    return _decided(CatalogueEntry(dataset=closed, datablock=current.datablock), current, now)


def with_beamtime(
    entry: CatalogueEntry, beamtime: BeamtimeFacts, policy: IngestPolicy
) -> CatalogueEntry:
    """`entry` with the proposal links, people and groups its beamtime gives (see `beamtimes`)."""
    dataset = entry.dataset
    ref = AcquisitionRef(
        run_id=dataset.runNumber or dataset.datasetName,
        beamtime_id=beamtime.beamtime_id,
        instrument=next(iter(dataset.instrumentIds), beamtime.beamline),
    )
    groups: dict[str, Any] = {
        "ownerGroup": policy.owner_group(ref, beamtime.beamline),
        "accessGroups": policy.access_groups(ref, beamtime.beamline),
    }
    dataset = dataset.model_copy(
        update={
            "proposalIds": list(dict.fromkeys([beamtime.beamtime_id, beamtime.proposal_id])),
            "principalInvestigators": beamtime.principal_investigators(),
            "owner": beamtime.owner(),
            "ownerEmail": beamtime.owner_email(),
            "contactEmail": beamtime.contact_email(),
            "description": dataset.description or beamtime.title,
            **groups,
        }
    )
    datablock = None if entry.datablock is None else entry.datablock.model_copy(update=groups)
    return CatalogueEntry(dataset=dataset, datablock=datablock)


def _is_new_version(proposed: CatalogueEntry, current: CatalogueEntry | None) -> bool:
    """With `update_strategy: version`: a closed run whose files or scientific metadata change.

    While a run is open everything patches it (it is still being written); once it is closed
    (`success`, `abort`, `fail`, `timeout`), a changed or added file, or changed scientific
    metadata, makes a new version. Status, end time, beamtime completion and groups patch.
    """
    if current is None or current.dataset.datasetStatus in (None, STATUS_OPEN):
        return False
    return proposed.dataset.scientificMetadata != current.dataset.scientificMetadata or _dump(
        proposed.datablock
    ) != _dump(current.datablock)


def _next_version(proposed: CatalogueEntry, current: CatalogueEntry) -> CatalogueEntry:
    """A new dataset `<pid of version 1>/<n>` holding `proposed`, linked to the version before."""
    previous = current.dataset
    base = previous.pipelineBasePid or previous.pid
    version = previous.pipelineVersion + 1
    pid = f"{base}/{version}"
    dataset = proposed.dataset.model_copy(
        update={
            "pid": pid,
            "pipelineBasePid": base,
            "pipelineVersion": version,
            "pipelineRevision": 0,
            "isPublished": False,
            "relationships": [{"pid": previous.pid, "relationship": "isNewVersionOf"}],
        }
    )
    datablock = None
    if proposed.datablock is not None:
        datablock = OrigDatablock.model_validate(
            proposed.datablock.model_dump(by_alias=True)
            | {"_id": OrigDatablock.id_for(pid), "datasetId": pid}
        )
    return CatalogueEntry(dataset=dataset, datablock=datablock)


def _decided(
    proposed: CatalogueEntry, current: CatalogueEntry | None, now: datetime
) -> CatalogueEntry | None:
    if current is not None and _same(proposed, current):
        return None
    return _stamped(proposed, now=catalogue_time(now), created=current is None)


def dataset_stored_event(dataset: Dataset, *, source: str) -> DatasetStored:
    """The `dataset.stored` event for a stored revision; the same revision gives the same event.

    The id is `<pid>#<revision>` and the time is `updatedAt`, so a re-publish after a crash is
    byte-for-byte the first publish and downstream recognises it as a redelivery.
    """
    return DatasetStored(
        id=f"{dataset.pid}#{dataset.pipelineRevision}",
        source=source,
        subject=dataset.pid,
        time=dataset.updatedAt or dataset.creationTime,
        data=DatasetStoredData(dataset=dataset),
    )


def _new_entry(data: AcquisitionData, policy: IngestPolicy) -> CatalogueEntry:
    """A dataset as the first event of its run creates it, before the event itself is applied."""
    if isinstance(data, RunStartedData):
        created, folder = data.started_at, UNKNOWN_FOLDER
    elif isinstance(data, FileClosedData):
        created, folder = data.closed_at, posixpath.dirname(normalise_file_path(data.path))
    else:
        created, folder = data.stopped_at, UNKNOWN_FOLDER
    dataset = Dataset(
        pid=policy.dataset_pid(data),
        type="raw",
        datasetName=data.run_id,
        runNumber=data.run_id,
        sourceFolder=folder,
        creationTime=catalogue_time(created),
        creationLocation=policy.creation_location(data),
        instrumentIds=[data.instrument],
        proposalIds=[data.beamtime_id],
        ownerGroup=policy.owner_group(data),
        accessGroups=policy.access_groups(data),
        isPublished=False,
    )
    return CatalogueEntry(dataset=dataset)


def _update(
    data: AcquisitionData, entry: CatalogueEntry, issues: Sequence[MetadataIssue]
) -> CatalogueEntry:
    """`entry` with `data` applied; every event merges its metadata, then does its own part."""
    dataset = entry.dataset
    files = _absolute_files(entry)
    folder = _stored_folder(dataset)
    metadata, unit_issues = with_si_units(
        merge_scientific_metadata(dataset.scientificMetadata, data.metadata)
    )
    changes: dict[str, Any] = {
        "scientificMetadata": metadata,
        "scientificMetadataIssues": _issues(dataset, unit_issues, issues),
    }
    if isinstance(data, RunStartedData):
        changes |= _run_started_fields(data, dataset)
        if data.source_folder is not None:
            folder = normalise_absolute(data.source_folder, what="source_folder")
    elif isinstance(data, FileClosedData):
        path = normalise_file_path(data.path)
        files[path] = _closed_file(files.get(path), path, data)
    else:
        changes |= {
            "endTime": catalogue_time(data.stopped_at),
            "datasetStatus": data.status,
            STATUS_REASON_FIELD: data.reason,
        }
    return _with_files(dataset.model_copy(update=changes), entry.datablock, files, folder)


def _issues(
    dataset: Dataset, unit_issues: list[MetadataIssue], found: Sequence[MetadataIssue]
) -> list[dict[str, str]]:
    """Unit issues are recomputed from the whole metadata; others accumulate until fixed."""
    kept = [
        issue
        for issue in map(MetadataIssue.from_document, dataset.scientificMetadataIssues)
        if issue.source != UNIT_SOURCE
    ]
    unique = dict.fromkeys([*kept, *found, *unit_issues])
    return [issue.as_document() for issue in unique]


def _run_started_fields(data: RunStartedData, dataset: Dataset) -> dict[str, Any]:
    """A field the start does not name keeps its value; a start never re-opens a stopped run."""
    started = catalogue_time(data.started_at)
    reopenable = dataset.datasetStatus in (None, STATUS_OPEN)
    return {
        "startTime": started,
        "creationTime": started,
        "datasetName": data.dataset_name or dataset.datasetName,
        "description": dataset.description if data.description is None else data.description,
        "datasetStatus": STATUS_OPEN if reopenable else dataset.datasetStatus,
    }


def _stored_folder(dataset: Dataset) -> str:
    if dataset.sourceFolder == UNKNOWN_FOLDER:
        return UNKNOWN_FOLDER
    return normalise_absolute(dataset.sourceFolder, what=f"stored sourceFolder of {dataset.pid!r}")


def _closed_file(previous: DataFile | None, path: str, data: FileClosedData) -> DataFile:
    """The file as now known; an unchanged file keeps its first record (and a known checksum)."""
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
    return DataFile(
        path=path,
        size=data.size,
        time=catalogue_time(data.closed_at),
        chk=checksum.value if checksum else None,
        chkAlg=checksum.algorithm if checksum else None,
    )


def _absolute_files(entry: CatalogueEntry) -> dict[str, DataFile]:
    """The stored files keyed by absolute path, in stored order, records as stored.

    Records keep their stored (relative) path: `_with_files` copies only those whose relative
    path changes, so a file event costs one new record, not a copy of the whole list. A stored entry written by someone else may be inconsistent (a relative `sourceFolder`);
    that is refused with a reason rather than retried forever.
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


def _with_files(
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
    dataset = dataset.model_copy(
        update={"sourceFolder": folder, "size": size, "numberOfFiles": len(file_list)}
    )
    if not file_list and datablock is None:
        return CatalogueEntry(dataset=dataset)
    block_fields: dict[str, Any] = {
        "datasetId": dataset.pid,
        "size": size,
        "chkAlg": _common_algorithm(file_list),
        "dataFileList": file_list,
        "ownerGroup": dataset.ownerGroup,
        "accessGroups": dataset.accessGroups,
    }
    if datablock is None:
        datablock = OrigDatablock.model_validate(
            {"_id": OrigDatablock.id_for(dataset.pid), **block_fields}
        )
    else:
        datablock = datablock.model_copy(update=block_fields)
    return CatalogueEntry(dataset=dataset, datablock=datablock)


def _placed(record: DataFile, relative_path: str) -> DataFile:
    if record.path == relative_path:
        return record
    return record.model_copy(update={"path": relative_path})


def _common_algorithm(files: list[DataFile]) -> str | None:
    """The checksum algorithm of the datablock: the one all checksummed files share, if any."""
    algorithms = {record.chkAlg for record in files if record.chkAlg}
    return algorithms.pop() if len(algorithms) == 1 else None


def _same(proposed: CatalogueEntry, current: CatalogueEntry) -> bool:
    return proposed.dataset.model_dump() == current.dataset.model_dump() and _dump(
        proposed.datablock
    ) == _dump(current.datablock)


def _dump(datablock: OrigDatablock | None) -> dict[str, Any] | None:
    return None if datablock is None else datablock.model_dump(by_alias=True)


def _stamped(entry: CatalogueEntry, *, now: datetime, created: bool) -> CatalogueEntry:
    stamp: dict[str, Any] = {
        "pipelineRevision": entry.dataset.pipelineRevision + 1,
        "updatedAt": now,
    }
    if created:
        stamp["createdAt"] = now
    return CatalogueEntry(dataset=entry.dataset.model_copy(update=stamp), datablock=entry.datablock)
