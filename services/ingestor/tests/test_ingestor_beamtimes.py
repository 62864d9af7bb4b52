"""Beamtimes (DESY 1 proposal : N beamtimes): proposals made, datasets completed. Pure parts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scicat_ingestor.beamtimes import BeamtimeFacts, beamtime_proposals, merged_parent
from scicat_ingestor.domain import apply_event, complete_with_beamtime
from scicat_ingestor.handlers import decode_beamtime_event
from scicat_schemas.events import BeamtimeUpdatedData, Person
from scicat_schemas.runtime.consumer import Rejected

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


def beamtime(**overrides) -> BeamtimeUpdatedData:
    fields = {
        "beamtime_id": "11012345",
        "proposal_id": "20230042",
        "beamline": "p08",
        "title": "Thin films under strain",
        "facility": "PETRA III",
        "principal_investigator": Person(email="pi@uni.example", lastname="Curie"),
        "leader": Person(email="leader@desy.example", firstname="Ada", lastname="Lovelace"),
        "start": datetime(2024, 5, 14, 8, 0, 0, 123456, tzinfo=UTC),
        "core_path": "/asap3/petra3/gpfs/p08/2024/data/11012345",
        "metadata": {
            "applicant": {"email": "applicant@uni.example", "lastname": "Meitner"},
            "proposalType": "I",
            "users": {"doorDb": ["alice", "bob"]},
        },
    }
    return BeamtimeUpdatedData(**(fields | overrides))


def test_beamtime_is_a_child_proposal_of_its_door_proposal() -> None:
    parent, child = beamtime_proposals(beamtime(), owner_group="g", access_groups=["g", "h"])

    assert (parent.proposalId, parent.type, parent.parentProposalId) == (
        "20230042",
        "DOOR Proposal",
        None,
    )
    assert (child.proposalId, child.type, child.parentProposalId) == (
        "11012345",
        "Beamtime",
        "20230042",
    )
    assert (child.pi_email, child.email, child.lastname) == (
        "pi@uni.example",
        "leader@desy.example",
        "Lovelace",
    )
    assert child.startTime == datetime(2024, 5, 14, 8, 0, 0, 123000, tzinfo=UTC)
    assert child.instrumentIds == ["p08"]
    assert child.metadata["users"] == {"doorDb": ["alice", "bob"]}
    assert child.metadata["corePath"] == "/asap3/petra3/gpfs/p08/2024/data/11012345"
    assert child.metadata["facility"] == "PETRA III"


def test_facts_read_back_from_the_stored_beamtime_equal_the_event_facts() -> None:
    data = beamtime()
    _, child = beamtime_proposals(data, owner_group="g", access_groups=[])

    assert BeamtimeFacts.from_proposal(child) == BeamtimeFacts.from_event(data)


def test_parent_keeps_fields_the_beamtime_does_not_know() -> None:
    stored, _ = beamtime_proposals(beamtime(), owner_group="g", access_groups=[])
    stored = stored.model_copy(update={"abstract": "edited by a person"})
    proposed, _ = beamtime_proposals(beamtime(title="New"), owner_group="g", access_groups=[])

    merged = merged_parent(stored, proposed)

    assert (merged.title, merged.abstract) == ("New", "edited by a person")


def test_dataset_takes_proposals_people_and_groups_from_its_beamtime(policy, acquisitions) -> None:
    entry = apply_event(
        acquisitions.file_closed(),
        None,
        policy=policy,
        now=NOW,
        beamtime=BeamtimeFacts.from_event(beamtime()),
    )

    assert entry is not None
    dataset = entry.dataset
    assert dataset.proposalIds == ["11012345", "20230042"]
    assert dataset.principalInvestigators == ["applicant@uni.example"]
    assert (dataset.owner, dataset.ownerEmail, dataset.contactEmail) == (
        "Lovelace",
        "leader@desy.example",
        "pi@uni.example",
    )
    assert dataset.description == "Thin films under strain"
    assert dataset.ownerGroup == "11012345-dmgt"
    assert dataset.accessGroups == [
        "11012345-dmgt",
        "11012345-clbt",
        "11012345-part",
        "p08dmgt",
        "p08staff",
    ]
    assert entry.datablock is not None
    assert entry.datablock.accessGroups == dataset.accessGroups


def test_without_applicant_the_pi_and_leader_stand_in() -> None:
    facts = BeamtimeFacts.from_event(beamtime(metadata={}))

    assert facts.principal_investigators() == ["pi@uni.example"]
    assert facts.contact_email() == "pi@uni.example"
    assert facts.owner() == "Lovelace"


def test_late_beamtime_completes_the_dataset_once(policy, acquisitions) -> None:
    early = apply_event(acquisitions.file_closed(), None, policy=policy, now=NOW)
    assert early is not None
    assert early.dataset.proposalIds == ["11012345"]
    facts = BeamtimeFacts.from_event(beamtime())

    completed = complete_with_beamtime(early, facts, policy=policy, now=NOW)

    assert completed is not None
    assert completed.dataset.pipelineRevision == early.dataset.pipelineRevision + 1
    assert completed.dataset.proposalIds == ["11012345", "20230042"]
    assert complete_with_beamtime(completed, facts, policy=policy, now=NOW) is None


@pytest.mark.parametrize("description", [None, "from the run"])
def test_run_description_wins_over_the_beamtime_title(policy, acquisitions, description) -> None:
    entry = apply_event(
        acquisitions.run_started(description=description),
        None,
        policy=policy,
        now=NOW,
        beamtime=BeamtimeFacts.from_event(beamtime()),
    )

    assert entry is not None
    assert entry.dataset.description == (description or "Thin films under strain")


@pytest.mark.parametrize(
    ("value", "error_type", "words"),
    [
        (None, "invalid-json", "no value"),
        (b"{not json", "invalid-json", "not valid"),
        (
            b'{"specversion": "1.0", "id": "1", "source": "/door", "type": "beamtime.updated", '
            b'"data": {"beamtime_id": "1", "beamline": "p08"}}',
            "invalid-event",
            "data.proposal_id",
        ),
        (
            b'{"specversion": "1.0", "id": "1", "source": "/door", "type": "beamtime.deleted", '
            b'"data": {}}',
            "unknown-type",
            "beamtime.updated",
        ),
    ],
)
def test_bad_proposal_events_are_rejected_with_a_reason(value, error_type, words) -> None:
    with pytest.raises(Rejected) as rejected:
        decode_beamtime_event(value)

    assert rejected.value.error_type == error_type
    assert words in rejected.value.reason
