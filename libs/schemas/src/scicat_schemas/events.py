"""CloudEvents 1.0 (structured JSON mode) and the payload of every event type.

Outside producers rely on these shapes, so they change only by adding optional fields. `source` +
`id` identify an event: a consumer that sees the same pair twice must change nothing the second
time. Every field carries a description because the committed JSON Schema / AsyncAPI document is
generated from these models and is the contract producers read.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)

from scicat_schemas.datacite import (
    ContributorType,
    FunderIdentifierType,
    RelatedIdentifierType,
    RelationType,
    ResourceTypeGeneral,
)
from scicat_schemas.documents import Dataset, PublicationRecord

SPEC_VERSION = "1.0"

_ORCID = re.compile(r"^(?:https?://orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])$")


def _now() -> datetime:
    return datetime.now(UTC)


class Payload(BaseModel):
    """Base of every `data` payload: unknown fields are refused so typos surface at the producer."""

    model_config = ConfigDict(extra="forbid")


# --- acquisition.events -------------------------------------------------------------------------


class Checksum(Payload):
    algorithm: str = Field(description="Checksum algorithm, e.g. `blake2b`, `sha256`, `md5`.")
    value: str = Field(min_length=1, description="Hex digest.")


ScientificMetadata = dict[str, Any]
"""Any JSON object; a leaf is either a plain value or `{"value": ..., "unit": ...}`."""


class AcquisitionRef(Payload):
    """What every acquisition event names: the run, the beamtime it belongs to, the instrument."""

    run_id: str = Field(min_length=1, description="Run (scan) identifier, unique in its beamtime.")
    beamtime_id: str = Field(min_length=1, description="Beamtime (DESY) or proposal/visit id.")
    instrument: str = Field(min_length=1, description="Instrument or beamline, e.g. `P08`.")


class RunStartedData(AcquisitionRef):
    started_at: AwareDatetime = Field(description="When the run started (timezone-aware).")
    dataset_name: str | None = Field(
        default=None, description="Human-readable dataset name; defaults to the run id."
    )
    source_folder: str | None = Field(
        default=None,
        description="Folder holding the run's files; defaults to the common folder of its files.",
    )
    description: str | None = Field(default=None, description="Free-text description of the run.")
    metadata: ScientificMetadata = Field(
        default_factory=dict, description="Scientific metadata known at run start."
    )


class FileClosedData(AcquisitionRef):
    path: str = Field(min_length=1, description="Absolute path of the file that was closed.")
    size: int = Field(ge=0, description="File size in bytes.")
    closed_at: AwareDatetime = Field(description="When the writer closed the file.")
    checksum: Checksum | None = Field(
        default=None, description="Checksum, when the writer knows it."
    )
    metadata: ScientificMetadata = Field(
        default_factory=dict,
        description='Scientific metadata: any JSON object; a value is plain or {"value", "unit"}.',
    )


class RunStoppedData(AcquisitionRef):
    stopped_at: AwareDatetime = Field(description="When the run stopped.")
    status: Literal["success", "abort", "fail"] = Field(
        default="success", description="How the run ended (bluesky `exit_status` vocabulary)."
    )
    reason: str | None = Field(default=None, description="Why it ended that way, if not success.")
    metadata: ScientificMetadata = Field(
        default_factory=dict, description="Scientific metadata known at run end."
    )


# --- proposals.events ---------------------------------------------------------------------------


class Person(Payload):
    email: str | None = Field(default=None, description="E-mail address.")
    firstname: str | None = Field(default=None, description="Given name.")
    lastname: str | None = Field(default=None, description="Family name.")


class BeamtimeUpdatedData(Payload):
    beamtime_id: str = Field(min_length=1, description="Beamtime id (DOOR `beamtimeId`).")
    proposal_id: str = Field(min_length=1, description="Parent proposal id (DOOR `proposalId`).")
    title: str | None = Field(default=None, description="Beamtime / proposal title.")
    beamline: str = Field(min_length=1, description="Beamline, e.g. `p08`.")
    facility: str | None = Field(default=None, description="Facility, e.g. `PETRA III`.")
    principal_investigator: Person | None = Field(default=None, description="The PI.")
    leader: Person | None = Field(default=None, description="Beamtime leader.")
    start: AwareDatetime | None = Field(default=None, description="Beamtime start.")
    end: AwareDatetime | None = Field(default=None, description="Beamtime end.")
    core_path: str | None = Field(default=None, description="Data folder of the beamtime.")
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Everything else the proposal system sent, kept verbatim (SciCat #1178).",
    )


# --- catalogue.datasets -------------------------------------------------------------------------


class DatasetStoredData(Payload):
    dataset: Dataset = Field(description="The dataset as stored, SciCat v4 field names.")


class DatasetDeletedData(Payload):
    pid: str = Field(description="Pid of the deleted dataset.")
    revision: int = Field(ge=0, description="Revision at deletion; later than any stored one.")


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


# --- the envelope -------------------------------------------------------------------------------


class CloudEvent(BaseModel):
    """CloudEvents 1.0 attributes; extension attributes (lower-case names) are kept."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"] = Field(default="1.0", description="CloudEvents version.")
    id: str = Field(
        default_factory=lambda: str(uuid.uuid4()),
        min_length=1,
        description="Event id; `source` + `id` identify the event (redelivery = same pair).",
    )
    source: str = Field(
        min_length=1, description="URI-reference of the producer, e.g. `/desy/p08/sardana`."
    )
    time: AwareDatetime = Field(default_factory=_now, description="When the event happened.")
    subject: str | None = Field(default=None, description="What the event is about (e.g. a path).")
    datacontenttype: Literal["application/json"] = Field(
        default="application/json", description="Always JSON."
    )

    @property
    def identity(self) -> str:
        """The idempotency key: `source` and `id` together."""
        return f"{self.source}\x1f{self.id}"


class RunStarted(CloudEvent):
    """A run (scan) began: opens its dataset."""

    type: Literal["run.started"] = Field(default="run.started", description="Event type.")
    data: RunStartedData = Field(description="The payload.")


class FileClosed(CloudEvent):
    """A writer closed a file: it joins its run's dataset (created if needed)."""

    type: Literal["file.closed"] = Field(default="file.closed", description="Event type.")
    data: FileClosedData = Field(description="The payload.")


class RunStopped(CloudEvent):
    """A run ended: closes its dataset and records how it ended."""

    type: Literal["run.stopped"] = Field(default="run.stopped", description="Event type.")
    data: RunStoppedData = Field(description="The payload.")


class BeamtimeUpdated(CloudEvent):
    """The proposal system created or changed a beamtime (DESY 1 proposal : N beamtimes)."""

    type: Literal["beamtime.updated"] = Field(default="beamtime.updated", description="Event type.")
    data: BeamtimeUpdatedData = Field(description="The payload.")


class DatasetStored(CloudEvent):
    """A dataset was created or changed in MongoDB; carries the whole stored dataset."""

    type: Literal["dataset.stored"] = Field(default="dataset.stored", description="Event type.")
    data: DatasetStoredData = Field(description="The payload.")


class DatasetDeleted(CloudEvent):
    """A dataset was removed from the catalogue."""

    type: Literal["dataset.deleted"] = Field(default="dataset.deleted", description="Event type.")
    data: DatasetDeletedData = Field(description="The payload.")


class PublicationRequested(CloudEvent):
    """Someone asked to publish datasets under a DOI."""

    type: Literal["publication.requested"] = Field(
        default="publication.requested", description="Event type."
    )
    data: PublicationRequestedData = Field(description="The payload.")


class PublicationRegistered(CloudEvent):
    """DataCite accepted the DOI; the publication is public and findable."""

    type: Literal["publication.registered"] = Field(
        default="publication.registered", description="Event type."
    )
    data: PublicationRegisteredData = Field(description="The payload.")


class PublicationAmendmentRequested(CloudEvent):
    """Someone asked to change the metadata of a registered publication (DataCite update)."""

    type: Literal["publication.amendment-requested"] = Field(
        default="publication.amendment-requested", description="Event type."
    )
    data: PublicationAmendmentRequestedData = Field(description="The payload.")


class PublicationWithdrawalRequested(CloudEvent):
    """Someone asked to withdraw a publication: its DOI is hidden, its datasets unpublished."""

    type: Literal["publication.withdrawal-requested"] = Field(
        default="publication.withdrawal-requested", description="Event type."
    )
    data: PublicationWithdrawalRequestedData = Field(description="The payload.")


class PublicationWithdrawn(CloudEvent):
    """A publication was withdrawn; its DOI is hidden at DataCite."""

    type: Literal["publication.withdrawn"] = Field(
        default="publication.withdrawn", description="Event type."
    )
    data: PublicationWithdrawnData = Field(description="The payload.")


AcquisitionEvent = Annotated[RunStarted | FileClosed | RunStopped, Field(discriminator="type")]
ProposalEvent = BeamtimeUpdated
DatasetEvent = Annotated[DatasetStored | DatasetDeleted, Field(discriminator="type")]
PublicationEvent = Annotated[
    PublicationRequested | PublicationRegistered | PublicationWithdrawn,
    Field(discriminator="type"),
]

ACQUISITION_EVENT: TypeAdapter[RunStarted | FileClosed | RunStopped] = TypeAdapter(AcquisitionEvent)
DATASET_EVENT: TypeAdapter[DatasetStored | DatasetDeleted] = TypeAdapter(DatasetEvent)
PUBLICATION_EVENT: TypeAdapter[
    PublicationRequested | PublicationRegistered | PublicationWithdrawn
] = TypeAdapter(PublicationEvent)
"""The three original types; kept as it was so existing consumers' dispatch stays correct."""

PublicationsTopicEvent = Annotated[
    PublicationRequested
    | PublicationAmendmentRequested
    | PublicationWithdrawalRequested
    | PublicationRegistered
    | PublicationWithdrawn,
    Field(discriminator="type"),
]
PUBLICATIONS_TOPIC_EVENT: TypeAdapter[
    PublicationRequested
    | PublicationAmendmentRequested
    | PublicationWithdrawalRequested
    | PublicationRegistered
    | PublicationWithdrawn
] = TypeAdapter(PublicationsTopicEvent)
"""Every type on `catalogue.publications`: requests (to the doi-minter) and announcements."""

EVENT_TYPES: dict[str, type[CloudEvent]] = {
    model.model_fields["type"].default: model
    for model in (
        RunStarted,
        FileClosed,
        RunStopped,
        BeamtimeUpdated,
        DatasetStored,
        DatasetDeleted,
        PublicationRequested,
        PublicationAmendmentRequested,
        PublicationWithdrawalRequested,
        PublicationRegistered,
        PublicationWithdrawn,
    )
}


def encode(event: CloudEvent) -> bytes:
    """Structured-mode JSON bytes, the wire form on every topic."""
    return event.model_dump_json(exclude_none=True).encode()
