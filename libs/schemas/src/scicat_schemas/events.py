"""CloudEvents 1.0 (structured JSON mode) and the payload of every event type.

Outside producers rely on these shapes, so they change only by adding optional fields. `source` +
`id` identify an event: a consumer that sees the same pair twice must change nothing the second
time. Every field carries a description because the committed JSON Schema / AsyncAPI document is
generated from these models and is the contract producers read.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from scicat_schemas.acquisition_payloads import (
    AcquisitionRef,
    BeamtimeUpdatedData,
    Checksum,
    FileClosedData,
    Person,
    RunStartedData,
    RunStoppedData,
)
from scicat_schemas.documents import Dataset
from scicat_schemas.payload_base import Payload
from scicat_schemas.publication_payloads import (
    Contributor,
    Creator,
    FundingReference,
    GeoLocation,
    PublicationAmendmentRequestedData,
    PublicationDescription,
    PublicationRegisteredData,
    PublicationRequestedData,
    PublicationWithdrawalRequestedData,
    PublicationWithdrawnData,
    RelatedIdentifier,
)

SPEC_VERSION = "1.0"


def _now() -> datetime:
    return datetime.now(UTC)


# --- catalogue.datasets -------------------------------------------------------------------------


class DatasetStoredData(Payload):
    dataset: Dataset = Field(description="The dataset as stored, SciCat v4 field names.")


class DatasetDeletedData(Payload):
    pid: str = Field(description="Pid of the deleted dataset.")
    revision: int = Field(ge=0, description="Revision at deletion; later than any stored one.")


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


__all__ = [
    "ACQUISITION_EVENT",
    "DATASET_EVENT",
    "EVENT_TYPES",
    "PUBLICATIONS_TOPIC_EVENT",
    "PUBLICATION_EVENT",
    "SPEC_VERSION",
    "AcquisitionEvent",
    "AcquisitionRef",
    "BeamtimeUpdated",
    "BeamtimeUpdatedData",
    "Checksum",
    "CloudEvent",
    "Contributor",
    "Creator",
    "DatasetDeleted",
    "DatasetDeletedData",
    "DatasetEvent",
    "DatasetStored",
    "DatasetStoredData",
    "FileClosed",
    "FileClosedData",
    "FundingReference",
    "GeoLocation",
    "Payload",
    "Person",
    "PublicationAmendmentRequested",
    "PublicationAmendmentRequestedData",
    "PublicationDescription",
    "PublicationEvent",
    "PublicationRegistered",
    "PublicationRegisteredData",
    "PublicationRequested",
    "PublicationRequestedData",
    "PublicationWithdrawalRequested",
    "PublicationWithdrawalRequestedData",
    "PublicationWithdrawn",
    "PublicationWithdrawnData",
    "PublicationsTopicEvent",
    "RelatedIdentifier",
    "RunStarted",
    "RunStartedData",
    "RunStopped",
    "RunStoppedData",
    "encode",
]
