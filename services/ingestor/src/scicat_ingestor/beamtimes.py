"""Beamtimes and proposals (DESY: 1 proposal : N beamtimes), and what datasets take from them. Pure.

`beamtime.updated` becomes two SciCat Proposals: the DOOR proposal (type `DOOR Proposal`) and a
child of type `Beamtime` whose `parentProposalId` names it (SciCat's only beamtime handling).
Everything the proposal system sent that has no Proposal field stays in the schemaless
`metadata` (SciCat #1178), verbatim.

A dataset of the beamtime gets, following nxstools' `BeamtimeLoader` (the DOOR → SciCat table in
`scicat-data-model.md`):

| Dataset field | from |
|---|---|
| `proposalIds` | `[beamtime id, proposal id]` |
| `principalInvestigators` | `[applicant.email]`, else `[pi.email]` |
| `owner` | `leader.lastname`, else `applicant.lastname` |
| `ownerEmail` | `leader.email`, else `applicant.email` |
| `contactEmail` | `pi.email`, else `applicant.email` |
| `description` | the title, when the run named no description |
| `ownerGroup`, `accessGroups` | the configured templates, `{beamline}` from the beamtime |

`applicant` is read from `metadata.applicant` (DOOR's block, kept verbatim).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scicat_schemas.documents import PROPOSAL_TYPE_BEAMTIME, PROPOSAL_TYPE_DOOR, Proposal
from scicat_schemas.events import BeamtimeUpdatedData, Person


@dataclass(frozen=True)
class BeamtimeFacts:
    """What a dataset needs to know about its beamtime; stored as the `Beamtime` Proposal."""

    beamtime_id: str
    proposal_id: str
    beamline: str
    title: str | None
    pi: Person | None
    leader: Person | None
    applicant: Person | None

    @classmethod
    def from_event(cls, data: BeamtimeUpdatedData) -> BeamtimeFacts:
        return cls(
            beamtime_id=data.beamtime_id,
            proposal_id=data.proposal_id,
            beamline=data.beamline,
            title=data.title,
            pi=data.principal_investigator,
            leader=data.leader,
            applicant=_person(data.metadata.get("applicant")),
        )

    @classmethod
    def from_proposal(cls, beamtime: Proposal) -> BeamtimeFacts:
        """The facts back from the stored `Beamtime` Proposal (as `beamtime_proposals` wrote it)."""
        metadata = beamtime.metadata
        return cls(
            beamtime_id=beamtime.proposalId,
            proposal_id=beamtime.parentProposalId or beamtime.proposalId,
            beamline=str(metadata.get("beamline") or next(iter(beamtime.instrumentIds), "")),
            title=beamtime.title,
            pi=_person_of(beamtime.pi_email, beamtime.pi_firstname, beamtime.pi_lastname),
            leader=_person_of(beamtime.email, beamtime.firstname, beamtime.lastname),
            applicant=_person(metadata.get("applicant")),
        )

    def principal_investigators(self) -> list[str]:
        email = _first(self.applicant, "email") or _first(self.pi, "email")
        return [email] if email else []

    def owner(self) -> str | None:
        return _first(self.leader, "lastname") or _first(self.applicant, "lastname")

    def owner_email(self) -> str | None:
        return _first(self.leader, "email") or _first(self.applicant, "email")

    def contact_email(self) -> str | None:
        return _first(self.pi, "email") or _first(self.applicant, "email")


def beamtime_proposals(
    data: BeamtimeUpdatedData, *, owner_group: str, access_groups: list[str]
) -> tuple[Proposal, Proposal]:
    """The DOOR proposal and its `Beamtime` child for one `beamtime.updated` payload."""
    pi, leader = data.principal_investigator, data.leader
    extras: dict[str, Any] = {
        key: value
        for key, value in {
            "beamline": data.beamline,
            "facility": data.facility,
            "corePath": data.core_path,
        }.items()
        if value is not None
    }
    shared: dict[str, Any] = {
        "title": data.title,
        "pi_email": pi.email if pi else None,
        "pi_firstname": pi.firstname if pi else None,
        "pi_lastname": pi.lastname if pi else None,
        "ownerGroup": owner_group,
        "accessGroups": access_groups,
    }
    parent = Proposal(proposalId=data.proposal_id, type=PROPOSAL_TYPE_DOOR, **shared)
    child = Proposal(
        proposalId=data.beamtime_id,
        type=PROPOSAL_TYPE_BEAMTIME,
        parentProposalId=data.proposal_id,
        email=leader.email if leader else None,
        firstname=leader.firstname if leader else None,
        lastname=leader.lastname if leader else None,
        startTime=_stored_time(data.start),
        endTime=_stored_time(data.end),
        instrumentIds=[data.beamline],
        metadata={**data.metadata, **extras},
        **shared,
    )
    return parent, child


def merged_parent(stored: Proposal | None, proposed: Proposal) -> Proposal:
    """The DOOR proposal after one of its beamtimes changed: the beamtime's view wins, but
    fields it does not know (another beamtime's, or a person's edits) are kept."""
    if stored is None:
        return proposed
    known = proposed.model_dump(exclude_none=True, exclude_defaults=True)
    return stored.model_copy(update=known)


def _stored_time(moment: datetime | None) -> datetime | None:
    """UTC at millisecond precision, as BSON stores it, so a repeat compares equal."""
    if moment is None:
        return None
    utc = moment.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def _first(person: Person | None, field: str) -> str | None:
    value = getattr(person, field, None) if person is not None else None
    return value or None


def _person_of(email: str | None, firstname: str | None, lastname: str | None) -> Person | None:
    if email is None and firstname is None and lastname is None:
        return None
    return Person(email=email, firstname=firstname, lastname=lastname)


def _person(value: object) -> Person | None:
    """A DOOR person block (`applicant`, ...), keeping only what a dataset uses."""
    if not isinstance(value, Mapping):
        return None
    return _person_of(
        _text(value.get("email")), _text(value.get("firstname")), _text(value.get("lastname"))
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
