"""The pure domain: acquisition events applied to a dataset and its file list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from scicat_ingestor.applied_events import copy_recognition
from scicat_ingestor.domain import (
    CatalogueEntry,
    IngestPolicy,
    InvalidAcquisition,
    apply_event,
    catalogue_time,
    changes_nothing_if_repeated,
)
from scicat_schemas.events import Checksum

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


def apply_all(policy, *events, start: CatalogueEntry | None = None) -> CatalogueEntry:
    """Apply `events` in order, each at a later `now`; a no-change result keeps the state."""
    entry = start
    for step, data in enumerate(events):
        entry = apply_event(data, entry, policy=policy, now=NOW + timedelta(seconds=step)) or entry
    assert entry is not None
    return entry


def paths(entry: CatalogueEntry) -> list[str]:
    assert entry.datablock is not None
    return [record.path for record in entry.datablock.dataFileList]


def test_lone_file_closed_creates_the_dataset_around_the_file(policy, acquisitions) -> None:
    entry = apply_event(acquisitions.file_closed("a.h5", size=123), None, policy=policy, now=NOW)

    assert entry is not None
    dataset = entry.dataset
    assert dataset.pid == "test/11012345/scan_0042"
    assert dataset.datasetName == "scan_0042"
    assert dataset.type == "raw"
    assert dataset.sourceFolder == acquisitions.folder
    assert dataset.creationTime == acquisitions.at(10)
    assert dataset.creationLocation == "/DESY/P08"
    assert dataset.instrumentIds == ["P08"]
    assert dataset.proposalIds == ["11012345"]
    assert dataset.ownerGroup == "11012345-dmgt"
    assert dataset.accessGroups == [
        "11012345-dmgt",
        "11012345-clbt",
        "11012345-part",
        "p08dmgt",
        "p08staff",
    ]
    assert dataset.isPublished is False
    assert (dataset.size, dataset.numberOfFiles) == (123, 1)
    assert (dataset.pipelineRevision, dataset.createdAt, dataset.updatedAt) == (1, NOW, NOW)
    assert entry.datablock is not None
    assert entry.datablock.id == entry.datablock.id_for(dataset.pid)
    assert entry.datablock.datasetId == dataset.pid
    assert paths(entry) == ["a.h5"]
    assert entry.datablock.ownerGroup == dataset.ownerGroup
    assert entry.datablock.accessGroups == dataset.accessGroups


def test_paths_are_stored_relative_to_the_source_folder(policy, acquisitions) -> None:
    entry = apply_all(
        policy,
        acquisitions.run_started(),
        acquisitions.file_closed("detector/img_0001.tif"),
        acquisitions.file_closed("master.h5"),
    )

    assert entry.dataset.sourceFolder == acquisitions.folder
    assert paths(entry) == ["detector/img_0001.tif", "master.h5"]


def test_file_outside_the_source_folder_widens_it_and_recomputes_every_path(
    policy, acquisitions
) -> None:
    entry = apply_all(
        policy,
        acquisitions.file_closed("a.h5", path="/gpfs/current/raw/scan_0042/a.h5"),
        acquisitions.file_closed("b.h5", path="/gpfs/current/processed/scan_0042/b.h5"),
    )

    assert entry.dataset.sourceFolder == "/gpfs/current"
    assert paths(entry) == ["raw/scan_0042/a.h5", "processed/scan_0042/b.h5"]


def test_source_folder_named_at_run_start_replaces_the_folder_guessed_from_files(
    policy, acquisitions
) -> None:
    entry = apply_all(
        policy,
        acquisitions.file_closed(path=f"{acquisitions.folder}/detector/img.tif"),
        acquisitions.run_started(source_folder=acquisitions.folder + "/"),
    )

    assert entry.dataset.sourceFolder == acquisitions.folder
    assert paths(entry) == ["detector/img.tif"]


def test_files_directly_under_the_root_keep_a_root_source_folder(policy, acquisitions) -> None:
    entry = apply_all(
        policy, acquisitions.file_closed(path="/a.h5"), acquisitions.file_closed(path="/b/c.h5")
    )

    assert entry.dataset.sourceFolder == "/"
    assert paths(entry) == ["a.h5", "b/c.h5"]


def test_size_and_number_of_files_always_equal_the_datablocks(policy, acquisitions) -> None:
    events = [
        acquisitions.run_started(),
        acquisitions.file_closed("a.h5", size=10),
        acquisitions.file_closed("b.h5", size=20),
        acquisitions.file_closed("a.h5", size=15),
        acquisitions.file_closed("c.h5", size=0, path="/elsewhere/c.h5"),
        acquisitions.run_stopped(),
    ]
    entry = None
    for step, data in enumerate(events):
        entry = apply_event(data, entry, policy=policy, now=NOW + timedelta(seconds=step)) or entry
        assert entry is not None
        if entry.datablock is not None:
            files = entry.datablock.dataFileList
            assert entry.dataset.size == entry.datablock.size == sum(f.size for f in files)
            assert entry.dataset.numberOfFiles == len(files)

    assert entry is not None
    assert (entry.dataset.size, entry.dataset.numberOfFiles) == (35, 3)


def test_changed_file_replaces_its_earlier_record(policy, acquisitions) -> None:
    first = Checksum(algorithm="sha256", value="aa")
    second = Checksum(algorithm="sha256", value="bb")
    entry = apply_all(
        policy,
        acquisitions.file_closed("a.h5", size=10, checksum=first),
        acquisitions.file_closed("b.h5", size=5),
        acquisitions.file_closed("a.h5", size=10, checksum=second, closed_at=acquisitions.at(30)),
    )

    assert entry.datablock is not None
    a, b = entry.datablock.dataFileList
    assert (a.path, a.size, a.chk, a.chkAlg, a.time) == (
        "a.h5",
        10,
        "bb",
        "sha256",
        acquisitions.at(30),
    )
    assert b.path == "b.h5"
    assert entry.dataset.pipelineRevision == 3


def test_datablock_checksum_algorithm_is_the_one_its_files_share(policy, acquisitions) -> None:
    sha = Checksum(algorithm="sha256", value="aa")
    md5 = Checksum(algorithm="md5", value="bb")
    same = apply_all(
        policy,
        acquisitions.file_closed("a.h5", checksum=sha),
        acquisitions.file_closed("b.h5"),
    )
    mixed = apply_all(policy, acquisitions.file_closed("c.h5", checksum=md5), start=same)

    assert same.datablock is not None and same.datablock.chkAlg == "sha256"
    assert mixed.datablock is not None and mixed.datablock.chkAlg is None


def test_same_file_closed_again_changes_nothing(policy, acquisitions) -> None:
    checksum = Checksum(algorithm="blake2b", value="ff")
    entry = apply_all(policy, acquisitions.file_closed("a.h5", checksum=checksum))

    again = acquisitions.file_closed("a.h5", checksum=checksum, closed_at=acquisitions.at(99))
    without_checksum = acquisitions.file_closed("a.h5")

    assert apply_event(again, entry, policy=policy, now=NOW + timedelta(hours=1)) is None
    assert apply_event(without_checksum, entry, policy=policy, now=NOW) is None


def test_checksum_learned_later_is_added_to_the_file(policy, acquisitions) -> None:
    entry = apply_all(
        policy,
        acquisitions.file_closed("a.h5"),
        acquisitions.file_closed("a.h5", checksum=Checksum(algorithm="md5", value="0a")),
    )

    assert entry.datablock is not None
    assert entry.datablock.dataFileList[0].chk == "0a"
    assert entry.dataset.pipelineRevision == 2


def test_repeated_run_start_changes_nothing(policy, acquisitions) -> None:
    entry = apply_all(policy, acquisitions.run_started(metadata={"energy": 12}))

    assert apply_event(acquisitions.run_started(), entry, policy=policy, now=NOW) is None


def test_times_are_compared_as_the_catalogue_stores_them(policy, acquisitions) -> None:
    cest = timezone(timedelta(hours=2))
    precise = datetime(2024, 5, 14, 11, 30, 0, 123456, tzinfo=cest)
    entry = apply_all(policy, acquisitions.run_started(started_at=precise))

    assert entry.dataset.startTime == datetime(2024, 5, 14, 9, 30, 0, 123000, tzinfo=UTC)
    assert entry.dataset.startTime.utcoffset() == timedelta(0)
    same_moment = acquisitions.run_started(started_at=precise.astimezone(UTC))
    assert apply_event(same_moment, entry, policy=policy, now=NOW) is None
    assert catalogue_time(precise) == entry.dataset.startTime


def test_run_start_sets_run_fields_and_opens_the_dataset(policy, acquisitions) -> None:
    entry = apply_all(
        policy,
        acquisitions.file_closed(),
        acquisitions.run_started(dataset_name="Sample A, 300 K", description="first scan"),
    )

    dataset = entry.dataset
    assert dataset.datasetName == "Sample A, 300 K"
    assert dataset.description == "first scan"
    assert dataset.startTime == dataset.creationTime == acquisitions.at(0)
    assert dataset.datasetStatus == "open"
    assert (dataset.createdAt, dataset.updatedAt) == (NOW, NOW + timedelta(seconds=1))


def test_run_stop_records_end_status_and_reason(policy, acquisitions) -> None:
    entry = apply_all(
        policy,
        acquisitions.run_started(),
        acquisitions.run_stopped(status="abort", reason="beam lost"),
    )

    assert entry.dataset.endTime == acquisitions.at(60)
    assert entry.dataset.datasetStatus == "abort"
    assert entry.dataset.model_dump()["datasetStatusReason"] == "beam lost"


def test_late_run_start_does_not_reopen_a_stopped_run(policy, acquisitions) -> None:
    entry = apply_all(policy, acquisitions.run_stopped(), acquisitions.run_started())

    assert entry.dataset.datasetStatus == "success"
    assert entry.dataset.creationTime == acquisitions.at(0)
    assert entry.dataset.sourceFolder == acquisitions.folder


def test_metadata_is_deep_merged_and_quantities_are_kept_whole(policy, acquisitions) -> None:
    entry = apply_all(
        policy,
        acquisitions.run_started(
            metadata={
                "sample": {"name": "LaB6", "temperature": {"value": 300, "unit": "K"}},
                "energy": {"value": 12.0, "unit": "keV"},
            }
        ),
        acquisitions.file_closed(
            metadata={"sample": {"temperature": {"value": 20.5}, "holder": "H1"}}
        ),
    )

    assert entry.dataset.scientificMetadata == {
        "sample": {"name": "LaB6", "temperature": {"value": 20.5}, "holder": "H1"},
        "energy": {
            "value": 12.0,
            "unit": "keV",
            "valueSI": 1.9226119608e-15,
            "unitSI": "kg*m**2/s**2",
        },
    }


def test_event_after_the_first_bumps_the_revision_by_one(policy, acquisitions) -> None:
    first = apply_all(policy, acquisitions.run_started())
    second = apply_event(acquisitions.file_closed(), first, policy=policy, now=NOW)

    assert second is not None
    assert second.dataset.pipelineRevision == first.dataset.pipelineRevision + 1
    assert second.dataset.createdAt == first.dataset.createdAt


def test_foreign_fields_survive_an_update(policy, acquisitions) -> None:
    entry = apply_all(policy, acquisitions.run_started())
    published = CatalogueEntry(
        dataset=entry.dataset.model_copy(update={"isPublished": True, "datasetlifecycle": {}})
    )

    updated = apply_event(acquisitions.run_stopped(), published, policy=policy, now=NOW)

    assert updated is not None
    assert updated.dataset.isPublished is True
    assert updated.dataset.model_dump()["datasetlifecycle"] == {}


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (lambda a: a.file_closed(path="raw/a.h5"), "is not absolute"),
        (lambda a: a.run_started(source_folder="gpfs/raw"), "source_folder"),
        (lambda a: a.file_closed(path="/"), "root folder"),
        (lambda a: a.file_closed(metadata={"$where": 1}), "'$where'"),
        (lambda a: a.run_stopped(metadata={"sample": {"t.k": 1}}), "metadata.sample"),
        (lambda a: a.file_closed(metadata={"n": 2**70}), "64-bit"),
        (lambda a: a.file_closed(size=2**64), "more than the catalogue can store"),
    ],
)
def test_input_no_retry_can_fix_is_refused_with_its_reason(
    policy, acquisitions, data, fragment
) -> None:
    with pytest.raises(InvalidAcquisition) as refused:
        apply_event(data(acquisitions), None, policy=policy, now=NOW)

    assert fragment in str(refused.value)


def test_metadata_the_dataset_already_holds_is_not_refused_again(policy, acquisitions) -> None:
    """A key stored by someone else (SciCat's API allows `t.k`) that a detector repeats with
    every file stores nothing new: the file is added. A new value under that key is refused."""
    first = apply_event(acquisitions.file_closed("a.h5"), None, policy=policy, now=NOW)
    assert first is not None
    held = {"sample": {"t.k": 1}}
    stored = CatalogueEntry(
        dataset=first.dataset.model_copy(update={"scientificMetadata": held}),
        datablock=first.datablock,
    )

    repeated = apply_event(
        acquisitions.file_closed("b.h5", metadata=held), stored, policy=policy, now=NOW
    )

    assert repeated is not None and paths(repeated) == ["a.h5", "b.h5"]
    with pytest.raises(InvalidAcquisition, match=r"metadata\.sample"):
        apply_event(
            acquisitions.file_closed("c.h5", metadata={"sample": {"t.k": 2}}),
            stored,
            policy=policy,
            now=NOW,
        )


def test_only_a_plain_file_report_may_be_applied_again_unrecognised(policy, acquisitions) -> None:
    """What `DEDUPLICATION=offsets` leaves unrecognised must change nothing when produced
    again: before or after a newer report of its file, after the run's stop."""
    plain = acquisitions.file_closed("a.h5", size=5, closed_at=acquisitions.at(10))
    newer = acquisitions.file_closed("a.h5", size=9, closed_at=acquisitions.at(20))
    stop = acquisitions.run_stopped(metadata={"energy": {"value": 1, "unit": "keV"}})
    assert changes_nothing_if_repeated(plain)
    assert copy_recognition(plain, grouped=False) == "unneeded"
    for history in ([plain], [plain, newer], [plain, stop], [plain, newer, stop]):
        entry = apply_all(policy, *history)
        assert apply_event(plain, entry, policy=policy, now=NOW) is None

    with_metadata = acquisitions.file_closed("a.h5", metadata={"frame": 1})
    assert copy_recognition(with_metadata, grouped=False) == "file"
    assert copy_recognition(plain, grouped=True) == "marker"
    assert copy_recognition(acquisitions.run_started(), grouped=True) == "marker"
    assert copy_recognition(acquisitions.run_started(), grouped=False) == "dataset"
    assert copy_recognition(acquisitions.run_stopped(), grouped=False) == "dataset"
    # with grouping on, a run not grouped yet may be later: its events' copies get markers
    assert copy_recognition(plain, grouped=False, groupable=True) == "marker"
    assert copy_recognition(acquisitions.run_stopped(), grouped=False, groupable=True) == "marker"


def test_access_groups_are_deduplicated_in_template_order(acquisitions) -> None:
    policy = IngestPolicy(
        pid_prefix="p",
        facility="ESS",
        owner_group_template="{beamtime_id}",
        access_group_templates=("{beamline}", "{beamtime_id}", "{beamline}"),
    )

    entry = apply_all(policy, acquisitions.run_started())

    assert entry.dataset.accessGroups == ["p08", "11012345"]
    assert entry.dataset.creationLocation == "/ESS/P08"


def test_stored_dataset_with_a_relative_source_folder_is_refused_not_guessed(
    policy, acquisitions
) -> None:
    entry = apply_all(policy, acquisitions.file_closed())
    assert entry.datablock is not None
    damaged = CatalogueEntry(
        dataset=entry.dataset.model_copy(update={"sourceFolder": "raw/scan"}),
        datablock=entry.datablock,
    )

    with pytest.raises(InvalidAcquisition, match="not an absolute path"):
        apply_event(acquisitions.file_closed("b.h5"), damaged, policy=policy, now=NOW)
