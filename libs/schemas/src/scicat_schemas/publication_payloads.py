"""Payloads of `catalogue.publications`: publication requests, amendments, withdrawals, outcomes."""

from __future__ import annotations

import re

from pydantic import AwareDatetime, Field, field_validator, model_validator

from scicat_schemas.datacite import (
    ContributorType,
    FunderIdentifierType,
    RelatedIdentifierType,
    RelationType,
    ResourceTypeGeneral,
)
from scicat_schemas.documents import PublicationRecord
from scicat_schemas.payload_base import Payload

_ORCID = re.compile(r"^(?:https?://orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])$")

# --- catalogue.publications ---------------------------------------------------------------------


class Creator(Payload):
    name: str = Field(min_length=1, description='Display name, "Family, Given" preferred.')
    given_name: str | None = Field(default=None, description="Given name.")
    family_name: str | None = Field(default=None, description="Family name.")
    orcid: str | None = Field(
        default=None, description="ORCID iD, bare (`0000-0002-1825-0097`) or as https URL."
    )
    affiliation: str | None = Field(default=None, description="Affiliation name.")
    affiliation_ror: str | None = Field(
        default=None, description="ROR id of the affiliation, `https://ror.org/...`."
    )

    @field_validator("orcid")
    @classmethod
    def _normalise_orcid(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = _ORCID.match(value.strip())
        if not match:
            raise ValueError(f"not an ORCID iD: {value!r} (expected 0000-0000-0000-000X)")
        return match.group(1)


class Contributor(Creator):
    contributor_type: ContributorType = Field(
        default="Other", description="DataCite `contributorType`, e.g. `DataCurator`."
    )


class FundingReference(Payload):
    funder_name: str = Field(min_length=1, description="Funder, e.g. `European Commission`.")
    funder_identifier: str | None = Field(
        default=None, description="Funder id, e.g. Crossref Funder ID or ROR URL."
    )
    funder_identifier_type: FunderIdentifierType = Field(
        default="Other", description="`ROR`, `Crossref Funder ID`, `ISNI`, `GRID` or `Other`."
    )
    award_number: str | None = Field(default=None, description="Grant number.")
    award_title: str | None = Field(default=None, description="Grant title.")


class GeoLocation(Payload):
    """Where the data was taken: a place name, a point and/or a bounding box (WGS 84)."""

    place: str | None = Field(default=None, description="Free-text place, e.g. `DESY, Hamburg`.")
    latitude: float | None = Field(default=None, ge=-90, le=90, description="Point latitude.")
    longitude: float | None = Field(default=None, ge=-180, le=180, description="Point longitude.")
    box: tuple[float, float, float, float] | None = Field(
        default=None, description="Box as [west, east, south, north] in degrees."
    )

    @model_validator(mode="after")
    def _something_and_whole_point(self) -> GeoLocation:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("a point needs both latitude and longitude")
        if self.place is None and self.latitude is None and self.box is None:
            raise ValueError("a geolocation needs a place, a point or a box")
        return self


class RelatedIdentifier(Payload):
    identifier: str = Field(min_length=1, description="The related identifier.")
    identifier_type: RelatedIdentifierType = Field(description="DataCite `relatedIdentifierType`.")
    relation_type: RelationType = Field(description="DataCite `relationType`, e.g. `IsCitedBy`.")
    resource_type_general: ResourceTypeGeneral | None = Field(
        default=None, description="What the related resource is."
    )


class PublicationDescription(Payload):
    """The descriptive metadata an amendment may change; every field optional."""

    title: str | None = Field(default=None, min_length=1, description="Title.")
    abstract: str | None = Field(default=None, min_length=1, description="Abstract.")
    creators: list[Creator] | None = Field(
        default=None, min_length=1, description="Creators, in citation order."
    )
    contributors: list[Contributor] | None = Field(
        default=None, description="Contributors with their DataCite `contributorType`."
    )
    publisher: str | None = Field(default=None, description="Publisher; defaults to the facility.")
    resource_type: str | None = Field(
        default=None, description="Free-text resource type, e.g. `Proposal`, `Beamtime`."
    )
    keywords: list[str] | None = Field(default=None, description="Subjects / keywords.")
    license: str | None = Field(default=None, description="Licence URL, e.g. CC-BY-4.0 URL.")
    language: str | None = Field(default=None, description="IETF BCP 47 language, e.g. `en`.")
    formats: list[str] | None = Field(default=None, description="Formats, e.g. `NeXus/HDF5`.")
    geo_locations: list[GeoLocation] | None = Field(
        default=None, description="Where the data was taken."
    )
    funding_references: list[FundingReference] | None = Field(
        default=None, description="Grants that funded the work."
    )
    related_identifiers: list[RelatedIdentifier] | None = Field(
        default=None, description="Papers, software, other DOIs related to the publication."
    )


class PublicationRequestedData(Payload):
    publication_id: str = Field(
        min_length=1, description="Stable id of the publication; the DOI suffix derives from it."
    )
    dataset_pids: list[str] = Field(
        default_factory=list,
        description="Pids of the datasets published; at least one unless `proposal_id` is set.",
    )
    proposal_id: str | None = Field(
        default=None,
        min_length=1,
        description="A proposal or beamtime (SciCat `Proposal`) the DOI names instead of datasets "
        "(proposal DOI); `dataset_pids` then lists datasets linked as its parts.",
    )
    title: str = Field(min_length=1, description="Title.")
    abstract: str = Field(min_length=1, description="Abstract.")
    creators: list[Creator] = Field(min_length=1, description="Creators, in citation order.")
    contributors: list[Contributor] = Field(
        default_factory=list, description="Contributors with their DataCite `contributorType`."
    )
    publication_year: int = Field(ge=1000, le=9999, description="Year of publication.")
    publisher: str | None = Field(default=None, description="Publisher; defaults to the facility.")
    resource_type_general: ResourceTypeGeneral | None = Field(
        default=None,
        description="DataCite 4.7 `resourceTypeGeneral`; default `Dataset`, or the minter's "
        "configured proposal type for a proposal DOI.",
    )
    resource_type: str | None = Field(
        default=None, description="Free-text resource type, e.g. `Proposal`, `Beamtime`."
    )
    keywords: list[str] = Field(default_factory=list, description="Subjects / keywords.")
    license: str | None = Field(default=None, description="Licence URL, e.g. CC-BY-4.0 URL.")
    language: str | None = Field(default=None, description="IETF BCP 47 language; default `en`.")
    formats: list[str] = Field(default_factory=list, description="Formats, e.g. `NeXus/HDF5`.")
    geo_locations: list[GeoLocation] = Field(
        default_factory=list, description="Where the data was taken."
    )
    funding_references: list[FundingReference] = Field(
        default_factory=list, description="Grants that funded the work."
    )
    related_identifiers: list[RelatedIdentifier] = Field(
        default_factory=list, description="Papers, software, other DOIs related to it."
    )
    draft: bool = Field(
        default=False,
        description="Only reserve the DOI (DataCite draft, SciCat `private`): nothing is published "
        "and the DOI does not resolve; the same request without `draft` publishes it.",
    )

    @model_validator(mode="after")
    def _names_something_to_publish(self) -> PublicationRequestedData:
        if not self.dataset_pids and self.proposal_id is None:
            raise ValueError("name the datasets (`dataset_pids`) or a proposal (`proposal_id`)")
        return self


class PublicationAmendmentRequestedData(Payload):
    publication_id: str = Field(min_length=1, description="The registered publication to amend.")
    changes: PublicationDescription = Field(
        description="Only the fields to change; lists replace the previous list whole."
    )
    reason: str | None = Field(default=None, description="Why, for the record.")


class PublicationWithdrawalRequestedData(Payload):
    publication_id: str = Field(min_length=1, description="The publication to withdraw.")
    reason: str = Field(min_length=1, description="Why; shown on the tombstone page.")


class PublicationRegisteredData(Payload):
    record: PublicationRecord = Field(
        description="Everything a consumer needs to render the publication: the PublishedData "
        "document and summaries of its datasets, the input of the DataCite / DC mapping."
    )


class PublicationWithdrawnData(Payload):
    publication_id: str = Field(description="Publication id.")
    doi: str = Field(description="The DOI, now hidden at DataCite.")
    withdrawn_at: AwareDatetime = Field(description="When it was withdrawn.")
    reason: str | None = Field(default=None, description="Why.")
    dataset_pids: list[str] = Field(
        default_factory=list, description="Datasets no longer published by it."
    )
