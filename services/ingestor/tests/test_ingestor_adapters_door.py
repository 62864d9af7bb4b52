"""A DESY DOOR `beamtime-metadata-<id>.json` export becomes `beamtime.updated`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from scicat_ingestor.adapters import BrokenMessage
from scicat_ingestor.adapters.door import from_beamtime_metadata


def export(**overrides) -> dict:
    """Shaped like DOOR's export (jkotan/scingestor test/config/beamtime-metadata-99001234.json)."""
    return {
        "applicant": {
            "email": "anna.schmidt@desy.de",
            "institute": "DESY",
            "lastname": "Schmidt",
            "userId": "1234",
            "username": "aschmidt",
        },
        "beamline": "p08",
        "beamlineAlias": "p08",
        "beamlineSetup": "LISA diffractometer",
        "beamtimeId": "11012345",
        "contact": "p08-staff@desy.de",
        "corePath": "/asap3/petra3/gpfs/p08/2026/data/11012345",
        "eventEnd": "2026-03-04T08:00:00+01:00",
        "eventStart": "2026-03-01T08:00:00+01:00",
        "facility": "PETRA III",
        "generated": "2026-02-27T11:59:02Z",
        "leader": {
            "email": "lars.leader@uni.example",
            "firstname": "Lars",
            "lastname": "Leader",
            "institute": "Uni",
            "userId": "77",
            "username": "lleader",
        },
        "onlineAnalysis": {"reservedNodes": ["node1"], "slurmPartition": "11012345"},
        "pi": {
            "email": "petra.pi@uni.example",
            "firstname": "Petra",
            "lastname": "Pi",
            "institute": "Uni",
            "userId": "78",
            "username": "ppi",
        },
        "proposalId": "20250123",
        "proposalType": "I",
        "title": "Liquid interfaces under shear",
        "unixId": "5000",
        "users": {"doorDb": ["aschmidt", "ppi"], "special": [], "unknown": []},
    } | overrides


def test_export_maps_to_beamtime_updated_and_keeps_everything_else() -> None:
    event = from_beamtime_metadata(export())

    data = event.data
    assert event.type == "beamtime.updated"
    assert (data.beamtime_id, data.proposal_id, data.beamline) == ("11012345", "20250123", "p08")
    assert (data.title, data.facility) == ("Liquid interfaces under shear", "PETRA III")
    assert data.principal_investigator.lastname == "Pi"
    assert data.leader.email == "lars.leader@uni.example"
    assert data.start == datetime(2026, 3, 1, 7, 0, tzinfo=UTC)
    assert data.core_path == "/asap3/petra3/gpfs/p08/2026/data/11012345"
    assert data.metadata["users"] == {"doorDb": ["aschmidt", "ppi"], "special": [], "unknown": []}
    assert data.metadata["pi"]["institute"] == "Uni"
    assert {"proposalType", "unixId", "onlineAnalysis", "applicant"} <= data.metadata.keys()
    assert "beamtimeId" not in data.metadata


def test_same_export_is_the_same_event_and_a_changed_one_a_new_event() -> None:
    first, again = from_beamtime_metadata(export()), from_beamtime_metadata(export())
    changed = from_beamtime_metadata(export(title="Another title"))

    assert first.id == again.id
    assert changed.id != first.id


def test_time_without_offset_is_read_in_the_local_zone() -> None:
    event = from_beamtime_metadata(export(eventStart="2026-07-01T08:00:00"))

    assert event.data.start.utcoffset() == timedelta(hours=2)
    assert event.data.start == datetime(2026, 7, 1, 8, tzinfo=timezone(timedelta(hours=2)))


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"proposalId": None}, "proposalId"),
        ({"beamline": ""}, "beamline"),
        ({"eventStart": "next monday"}, "ISO 8601"),
    ],
)
def test_unusable_export_is_broken_with_the_reason(overrides, complaint) -> None:
    with pytest.raises(BrokenMessage, match=complaint):
        from_beamtime_metadata(export(**overrides))
