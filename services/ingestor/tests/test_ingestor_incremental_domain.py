"""The incremental domain step: what an event leaves alone is not recomputed, with equal results.

Every shortcut is checked against the full computation it replaces.
"""

from __future__ import annotations

import posixpath
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from unittest.mock import patch

import pytest
from bson.tz_util import utc as bson_utc
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import AwareDatetime, TypeAdapter

from scicat_ingestor import catalogue_entry, domain
from scicat_ingestor.catalogue_entry import (
    CatalogueEntry,
    absolute_files,
    catalogue_time,
    with_files,
)
from scicat_ingestor.domain import apply_event, stored_folder
from scicat_ingestor.measurements import MeasurementView, RunSample
from scicat_ingestor.quantities import SI_KEYS, MetadataIssue
from scicat_ingestor.scientific_metadata import merge_changes_nothing
from scicat_ingestor.settings import Settings
from scicat_schemas.events import Checksum, FileClosedData, RunStartedData, RunStoppedData

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)
FOLDER = "/gpfs/current/raw/scan_0042"
POLICY = Settings(pid_prefix="test").policy()


def file_closed(name: str, size: int, metadata=None, checksum: str | None = None):
    """`checksum`: a blake2b digest, or `algorithm:digest`."""
    algorithm, _, value = (checksum or "").rpartition(":")
    return FileClosedData(
        run_id="scan_0042",
        beamtime_id="11012345",
        instrument="P08",
        path=f"{FOLDER}/{name}",
        size=size,
        closed_at=NOW,
        metadata=metadata or {},
        checksum=None
        if checksum is None
        else Checksum(algorithm=algorithm or "blake2b", value=value),
    )


def recomputed(entry: CatalogueEntry) -> CatalogueEntry:
    """The full computation: file list placed again, sizes summed from it."""
    return with_files(
        entry.dataset, entry.datablock, absolute_files(entry), stored_folder(entry.dataset)
    )


def test_repeated_metadata_changes_nothing_and_new_values_do() -> None:
    stored = {
        "energy": {"value": 12.4, "unit": "keV", "valueSI": 1.98e-15, "unitSI": "kg*m^2/s^2"},
        "sample": {"name": "LaB6", "temperature": 295},
        "mode": "fly",
    }

    assert merge_changes_nothing(
        stored, {"energy": {"value": 12.4, "unit": "keV"}}, ignored=SI_KEYS
    )
    assert merge_changes_nothing(stored, {"sample": {"name": "LaB6"}}, ignored=SI_KEYS)
    assert not merge_changes_nothing(stored, {"energy": {"value": 12.5, "unit": "keV"}})
    assert not merge_changes_nothing(stored, {"sample": {"temperature": 295.0}})
    assert not merge_changes_nothing(stored, {"mode": True})
    assert not merge_changes_nothing(stored, {"frame": 1})
    assert not merge_changes_nothing(stored, {"sample": "LaB6"})
    # a quantity is the same only with the same keys, SI values aside
    assert not merge_changes_nothing(
        stored, {"energy": {"value": 12.4, "unit": "keV", "error": 0.1}}, ignored=SI_KEYS
    )
    assert not merge_changes_nothing(stored, {"energy": {"value": 12.4}}, ignored=SI_KEYS)
    assert not merge_changes_nothing(
        stored, {"energy": {"value": 12.4, "unit": "keV"}}
    )  # SI values compared when not ignored
    assert not merge_changes_nothing(stored, {"energy": {"value": 12, "unit": "keV"}})


def test_file_repeating_its_runs_metadata_keeps_the_stored_si_values_and_unit_issues() -> None:
    metadata = {"energy": {"value": 12.4, "unit": "keV"}, "flux": {"value": 3, "unit": "zorkmids"}}
    first = apply_event(file_closed("a.cbf", 10, metadata), None, policy=POLICY, now=NOW)
    assert first is not None

    second = apply_event(file_closed("b.cbf", 20, metadata), first, policy=POLICY, now=NOW)

    assert second is not None
    assert second.dataset.scientificMetadata is first.dataset.scientificMetadata
    assert second.dataset.scientificMetadataIssues == first.dataset.scientificMetadataIssues
    assert [issue["key"] for issue in second.dataset.scientificMetadataIssues] == ["flux"]
    # Issues found in the file itself are recorded although the metadata repeats.
    found = [MetadataIssue("title", "nexus", "missing")]
    third = apply_event(
        file_closed("d.cbf", 5, metadata), second, policy=POLICY, now=NOW, issues=found
    )
    assert third is not None
    assert [(i["key"], i["source"]) for i in third.dataset.scientificMetadataIssues] == [
        ("title", "nexus"),
        ("flux", "units"),
    ]
    changed = apply_event(
        file_closed("c.cbf", 30, {"energy": {"value": 10, "unit": "keV"}}),
        second,
        policy=POLICY,
        now=NOW,
    )
    assert changed is not None
    assert (
        changed.dataset.scientificMetadata["energy"]["valueSI"]
        != (first.dataset.scientificMetadata["energy"]["valueSI"])
    )


files = st.lists(
    st.tuples(
        st.sampled_from(["a.cbf", "b.cbf", "sub/c.cbf", "d.cbf"]),
        st.integers(min_value=0, max_value=1000),
        st.sampled_from([None, "ab", "cd", "sha256:ef"]),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(files)
def test_file_list_updated_in_place_equals_the_list_recomputed(events) -> None:
    entry = None
    for step, (name, size, checksum) in enumerate(events):
        now = NOW + timedelta(seconds=step)
        data = file_closed(name, size, checksum=checksum)
        entry = apply_event(data, entry, policy=POLICY, now=now) or entry

        assert entry is not None and entry.datablock is not None
        full = recomputed(entry)
        assert entry.dataset == full.dataset
        assert entry.datablock == full.datablock
        assert entry.dataset.size == sum(r.size for r in entry.datablock.dataFileList)
        assert entry.dataset.numberOfFiles == len({name for name, _, _ in events[: step + 1]})


def test_run_whose_files_share_an_algorithm_does_not_scan_its_list_per_file(monkeypatch) -> None:
    """The datablock's common algorithm follows from the one before: a 20,000-file run with
    checksums cost ~1.2 ms per event while every event scanned the whole list for it."""
    scans = []
    full_scan = catalogue_entry._common_algorithm

    def counted(files):
        scans.append(len(files))
        return full_scan(files)

    monkeypatch.setattr(catalogue_entry, "_common_algorithm", counted)
    entry = None
    for n in range(200):
        data = file_closed(f"img_{n:05d}.cbf", 10 + n, checksum=f"{n:064x}")
        entry = apply_event(data, entry, policy=POLICY, now=NOW) or entry
    assert entry is not None and entry.datablock is not None
    assert entry.datablock.chkAlg == "blake2b"

    assert sum(scans) <= 2  # the first file's list, at most once more for the second

    mixed = apply_event(
        file_closed("other.cbf", 1, checksum="sha256:ef"), entry, policy=POLICY, now=NOW
    )
    assert mixed is not None and mixed.datablock is not None
    assert mixed.datablock.chkAlg is None  # two algorithms: no common one


events_of_a_run = st.lists(
    st.one_of(
        st.tuples(
            st.just("file"),
            st.sampled_from(["a.cbf", "sub/c.cbf", "../other/d.cbf"]),
            st.integers(min_value=0, max_value=1000),
        ),
        st.tuples(
            st.just("start"), st.sampled_from([None, FOLDER, "/gpfs/current/raw"]), st.none()
        ),
        st.tuples(st.just("stop"), st.sampled_from(["success", "abort"]), st.none()),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=80, deadline=None)
@given(events_of_a_run, st.booleans())
def test_starts_and_stops_keep_the_list_as_the_full_computation_would(events, grouped) -> None:
    """A start or a stop leaves the file list as stored (O(1), not a pass over the list); the
    result is what placing every file again gives (the shortcut off), in a measurement too."""
    ref = {"run_id": "scan_0042", "beamtime_id": "11012345", "instrument": "P08"}
    measurement = MeasurementView("m1", [RunSample("scan_0042", {})]) if grouped else None
    entry = full = None
    for step, (kind, value, size) in enumerate(events):
        now = NOW + timedelta(seconds=step)
        data: object
        if kind == "file":
            path = posixpath.normpath(f"{FOLDER}/{value}")
            data = file_closed(value, size).model_copy(update={"path": path})
        elif kind == "start":
            data = RunStartedData(**ref, started_at=now, source_folder=value)
        else:
            data = RunStoppedData(**ref, stopped_at=now, status=value)
        entry = apply_event(data, entry, policy=POLICY, now=now, measurement=measurement) or entry
        with patch.object(domain, "with_files_kept", lambda *_: None):
            full = apply_event(data, full, policy=POLICY, now=now, measurement=measurement) or full

        assert entry is not None and full is not None
        assert entry.dataset == full.dataset
        assert entry.datablock == full.datablock


def test_an_owned_list_grows_in_place_with_the_same_result() -> None:
    """The batch store hands the domain a state it drops for the result (`owned`): a new file is
    appended to that state's list rather than to a copy of it (each file of a long run cost a
    copy of the whole list), and the states are the ones copying gives."""
    copied = owned = None
    for n in range(50):
        data = file_closed(f"img_{n:03d}.cbf", n + 1, checksum=f"{n:064x}")
        copied = apply_event(data, copied, policy=POLICY, now=NOW) or copied
        before = owned
        owned = apply_event(data, owned, policy=POLICY, now=NOW, owned=True) or owned
        assert owned.datablock is not None and copied.datablock is not None
        assert owned.dataset == copied.dataset and owned.datablock == copied.datablock
        if before is not None and before.datablock is not None:
            assert owned.datablock.dataFileList is before.datablock.dataFileList
            assert owned.datablock is before.datablock  # updated, not copied

    versions = replace(POLICY, update_strategy="version")
    stopped = apply_event(
        RunStoppedData(
            run_id="scan_0042", beamtime_id="11012345", instrument="P08", stopped_at=NOW
        ),
        owned,
        policy=versions,
        now=NOW,
    )
    assert stopped is not None and stopped.datablock is not None
    kept = list(stopped.datablock.dataFileList)
    version = apply_event(file_closed("late.cbf", 1), stopped, policy=versions, now=NOW, owned=True)
    assert version is not None and version.pid != stopped.pid
    assert stopped.datablock.dataFileList == kept  # a version never extends the one before


def test_file_outside_the_folder_still_widens_it() -> None:
    first = apply_event(file_closed("a.cbf", 10), None, policy=POLICY, now=NOW)
    outside = file_closed("a.cbf", 5).model_copy(update={"path": "/gpfs/current/raw/other.cbf"})

    entry = apply_event(outside, first, policy=POLICY, now=NOW)

    assert entry is not None and entry.datablock is not None
    assert entry.dataset.sourceFolder == "/gpfs/current/raw"
    assert [r.path for r in entry.datablock.dataFileList] == ["scan_0042/a.cbf", "other.cbf"]
    assert entry.dataset.size == 15


def test_dataset_size_edited_apart_from_its_file_list_is_recomputed_not_carried_on() -> None:
    first = apply_event(file_closed("a.cbf", 10), None, policy=POLICY, now=NOW)
    assert first is not None and first.datablock is not None
    edited = CatalogueEntry(
        dataset=first.dataset.model_copy(update={"size": 999}), datablock=first.datablock
    )

    entry = apply_event(file_closed("b.cbf", 20), edited, policy=POLICY, now=NOW)

    assert entry is not None and entry.datablock is not None
    assert (entry.dataset.size, entry.datablock.size) == (30, 30)


@settings(max_examples=60, deadline=None)
@given(files, files)
def test_two_lists_grown_from_one_parent_each_equal_their_recomputed_list(left, right) -> None:
    """Where each path sits is remembered along a lineage of lists; two lineages from one
    parent (a batch retried on the same state) must not mislead each other."""
    root = apply_event(file_closed("root.cbf", 1), None, policy=POLICY, now=NOW)
    branches = {"left": root, "right": root}
    names = {"left": {"root.cbf"}, "right": {"root.cbf"}}
    steps = [("left", event) for event in left] + [("right", event) for event in right]
    steps.sort(key=lambda step: hash(step[1]) % 7)  # interleave the two lineages
    for n, (side, (name, size, checksum)) in enumerate(steps):
        data = file_closed(name, size, checksum=checksum)
        now = NOW + timedelta(seconds=n + 1)
        branches[side] = apply_event(data, branches[side], policy=POLICY, now=now) or branches[side]
        names[side].add(name)

        entry = branches[side]
        assert entry is not None and entry.datablock is not None
        assert entry.datablock == recomputed(entry).datablock
        assert sorted(r.path.rsplit("/", 1)[-1] for r in entry.datablock.dataFileList) == sorted(
            n.rsplit("/", 1)[-1] for n in names[side]
        )


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 3, 1, 10, 0, 0, 123000, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 0, 0, 123999, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=bson_utc),
        TypeAdapter(AwareDatetime).validate_json(b'"2026-03-01T10:00:00.123456Z"'),
    ],
    ids=["utc", "utc-ms", "plus-two-hours", "bson-utc", "pydantic-utc"],
)
def test_catalogue_time_is_the_same_instant_in_utc_to_the_millisecond(moment: datetime) -> None:
    stored = catalogue_time(moment)

    assert stored.tzinfo is UTC
    assert stored == datetime(2026, 3, 1, 10, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize("strategy", ["patch", "version"])
def test_applying_an_event_leaves_the_state_it_was_given_as_it_was(
    policy, acquisitions, strategy
) -> None:
    """The domain copies what it changes and stamps only its own copies in place: the state it
    was handed (the batch's loaded state, a remembered committed one) never changes."""
    policy = replace(policy, update_strategy=strategy)
    started = acquisitions.run_started(metadata={"energy": {"value": 12.4, "unit": "keV"}})
    opened = apply_event(started, None, policy=policy, now=NOW)
    current = apply_event(acquisitions.file_closed("a.h5"), opened, policy=policy, now=NOW)
    assert current is not None and current.datablock is not None
    before = (current.dataset.model_dump(), current.datablock.model_dump())
    for data in (
        acquisitions.file_closed("b.h5"),
        acquisitions.file_closed("a.h5", size=999),
        acquisitions.run_started(metadata={"energy": {"value": 13.0, "unit": "keV"}}),
        acquisitions.run_stopped(),
    ):
        proposed = apply_event(data, current, policy=policy, now=NOW + timedelta(hours=1))

        assert proposed is not None
        assert proposed.dataset is not current.dataset
        assert (current.dataset.model_dump(), current.datablock.model_dump()) == before
