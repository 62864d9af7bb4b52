"""Stored documents, with SciCat v4 field names and collection names.

An existing SciCat backend reading the same MongoDB database shows what the pipeline wrote, so the
field names here are SciCat's (camelCase), not ours. Fields SciCat does not know are few and named
so that their purpose is obvious (`pipelineRevision`, `publicationId`).
"""

from __future__ import annotations

import functools
import uuid
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

DATASET_COLLECTION = "Dataset"
ORIG_DATABLOCK_COLLECTION = "OrigDatablock"
PROPOSAL_COLLECTION = "Proposal"
PUBLISHED_DATA_COLLECTION = "PublishedData"

PROPOSAL_TYPE_DOOR = "DOOR Proposal"
PROPOSAL_TYPE_BEAMTIME = "Beamtime"

_DATABLOCK_NAMESPACE = uuid.UUID("7f1b4a52-2f4e-4c1f-9a53-1d1e0c6f3a10")


class Document(BaseModel):
    """Stored documents keep fields they do not model: SciCat or a later version may add them."""

    model_config = ConfigDict(extra="allow")


class Technique(Document):
    pid: str = Field(description="Technique identifier (e.g. PaNET URI).")
    name: str = Field(description="Technique name.")


INGESTOR_APPLIED_EVENTS = "pipelineAppliedEvents"
"""A field the ingestor keeps in a stored Dataset for itself: the identities of the events that
changed it and must be recognised if produced again (`DEDUPLICATION=offsets`). Bookkeeping, not
catalogue content, so `Dataset` never carries it: no service reading the collection publishes,
indexes or serves it."""


class Dataset(Document):
    """A SciCat v4 Dataset (collection `Dataset`)."""

    @model_validator(mode="before")
    @classmethod
    def _without_ingestor_bookkeeping(cls, data: Any) -> Any:
        if isinstance(data, dict) and INGESTOR_APPLIED_EVENTS in data:
            return {key: value for key, value in data.items() if key != INGESTOR_APPLIED_EVENTS}
        return data

    pid: str = Field(description="Persistent id, `<prefix>/<beamtime_id>/<run_id>` by default.")
    type: str = Field(default="raw", description="`raw` or `derived`.")
    datasetName: str = Field(description="Name shown to people; defaults to the run id.")
    description: str | None = Field(default=None, description="Free text.")
    sourceFolder: str = Field(description="Folder of the files, no trailing slash.")
    sourceFolderHost: str | None = Field(default=None, description="Host of the source folder.")
    size: int = Field(default=0, ge=0, description="Total bytes of the file list.")
    numberOfFiles: int = Field(default=0, ge=0, description="Number of files in the file list.")
    creationTime: AwareDatetime = Field(description="When the data was taken (run start).")
    startTime: AwareDatetime | None = Field(default=None, description="Run start.")
    endTime: AwareDatetime | None = Field(default=None, description="Run end.")
    runNumber: str | None = Field(default=None, description="Run / scan id.")
    scientificMetadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Free object; quantities as {value, unit, valueSI, unitSI}.",
    )
    scientificMetadataIssues: list[dict[str, str]] = Field(
        default_factory=list,
        description="Problems found in the metadata, never fatal: {key (dotted path), source "
        "(`units`, `nexus`), problem}; e.g. a unit without SI conversion.",
    )
    proposalIds: list[str] = Field(default_factory=list, description="Beamtime and proposal ids.")
    instrumentIds: list[str] = Field(default_factory=list, description="Instrument ids.")
    sampleIds: list[str] = Field(default_factory=list, description="Sample ids.")
    techniques: list[Technique] = Field(default_factory=list, description="Techniques used.")
    keywords: list[str] = Field(default_factory=list, description="Keywords.")
    owner: str | None = Field(default=None, description="Owner's name.")
    contactEmail: str | None = Field(default=None, description="Contact e-mail.")
    ownerEmail: str | None = Field(default=None, description="Owner's e-mail.")
    principalInvestigators: list[str] = Field(default_factory=list, description="PIs.")
    creationLocation: str = Field(description="`/<facility>/<instrument>`.")
    ownerGroup: str = Field(description="Group owning the dataset (access control).")
    accessGroups: list[str] = Field(default_factory=list, description="Groups that may read it.")
    isPublished: bool = Field(default=False, description="True only once a DOI is registered.")
    datasetStatus: str | None = Field(
        default=None, description="Pipeline view of the run: `open`, `success`, `abort`, `fail`."
    )
    createdAt: AwareDatetime | None = Field(default=None, description="First stored.")
    updatedAt: AwareDatetime | None = Field(default=None, description="Last changed.")
    pipelineRevision: int = Field(
        default=0,
        ge=0,
        description="Incremented on every change; consumers use it to ignore stale copies.",
    )
    pipelineVersion: int = Field(
        default=1,
        ge=1,
        description="Version of the run's dataset (ingestor `update_strategy: version`); "
        "version n > 1 has pid `<pid of version 1>/<n>`.",
    )
    pipelineBasePid: str | None = Field(
        default=None, description="Pid of version 1, on versions after the first."
    )


class DataFile(Document):
    path: str = Field(description="Path relative to the dataset's `sourceFolder`.")
    size: int = Field(ge=0, description="Bytes.")
    time: AwareDatetime = Field(description="When the file was closed.")
    chk: str | None = Field(default=None, description="Checksum value.")
    chkAlg: str | None = Field(default=None, description="Checksum algorithm of `chk`.")


class OrigDatablock(Document):
    """The file list of a dataset (collection `OrigDatablock`)."""

    id: str = Field(alias="_id", description="Deterministic from the dataset pid.")
    datasetId: str = Field(description="Pid of the dataset.")
    size: int = Field(ge=0, description="Sum of the file sizes.")
    chkAlg: str | None = Field(default=None, description="Checksum algorithm of the files.")
    dataFileList: list[DataFile] = Field(default_factory=list, description="The files.")
    ownerGroup: str = Field(description="Same as the dataset.")
    accessGroups: list[str] = Field(default_factory=list, description="Same as the dataset.")
    pipelinePart: int = Field(
        default=0,
        ge=0,
        description="Position of this datablock in its dataset's file list: the pipeline stores "
        "a long list as several datablocks of a bounded number of files (parts 0, 1, ...).",
    )

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def id_for(dataset_pid: str, part: int = 0) -> str:
        """The id of part `part` of a dataset's file list; any replica computes the same.

        Part 0 has the id of the single datablock earlier versions wrote. Remembered: the
        ingestor asks for the same few ids several times per event (a SHA-1 each, ~1.5 µs)."""
        name = dataset_pid if part == 0 else f"{dataset_pid}\x1fpart {part}"
        return str(uuid.uuid5(_DATABLOCK_NAMESPACE, name))


class Proposal(Document):
    """A SciCat Proposal; a DESY beamtime is a child of type `Beamtime` with `parentProposalId`."""

    proposalId: str = Field(description="Unique id.")
    type: str = Field(description="`DOOR Proposal` or `Beamtime`.")
    parentProposalId: str | None = Field(default=None, description="Parent proposal (beamtimes).")
    title: str | None = Field(default=None, description="Title.")
    abstract: str | None = Field(default=None, description="Abstract.")
    pi_email: str | None = None
    pi_firstname: str | None = None
    pi_lastname: str | None = None
    email: str | None = None
    firstname: str | None = None
    lastname: str | None = None
    startTime: AwareDatetime | None = None
    endTime: AwareDatetime | None = None
    instrumentIds: list[str] = Field(default_factory=list)
    ownerGroup: str = Field(description="Group owning the proposal.")
    accessGroups: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict, description="Schemaless extras.")


PublicationStatus = Literal["private", "public", "registered", "amended", "withdrawn"]


class PublishedData(Document):
    """A SciCat v4 PublishedData (collection `PublishedData`); `_id` is the DOI."""

    doi: str = Field(description="The DOI, `<prefix>/<suffix>`.")
    publicationId: str = Field(description="Id of the publication request that made it.")
    title: str = Field(description="Title.")
    abstract: str = Field(description="Abstract.")
    datasetPids: list[str] = Field(description="Pids of the published datasets.")
    status: PublicationStatus = Field(description="SciCat v4 state, plus `withdrawn`.")
    numberOfFiles: int = Field(default=0, description="Files in all datasets.")
    sizeOfArchive: int = Field(default=0, description="Bytes in all datasets.")
    registeredTime: AwareDatetime | None = Field(
        default=None, description="When DataCite accepted."
    )
    landingPage: str | None = Field(default=None, description="URL the DOI resolves to.")
    proposalId: str | None = Field(
        default=None, description="Pipeline field: the proposal or beamtime a proposal DOI names."
    )
    withdrawnTime: AwareDatetime | None = Field(
        default=None, description="Pipeline field: when the DOI was hidden."
    )
    withdrawalReason: str | None = Field(
        default=None, description="Pipeline field: why it was withdrawn (tombstone page)."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="creators, publisher, publicationYear, resourceType, subjects, rightsList ...",
    )
    createdAt: AwareDatetime | None = Field(default=None, description="First stored.")
    updatedAt: AwareDatetime | None = Field(default=None, description="Last changed.")


class DatasetSummary(Document):
    """What a publication shows of each dataset; copied so renderers never read the Dataset."""

    pid: str = Field(description="Dataset pid.")
    datasetName: str = Field(description="Dataset name.")
    size: int = Field(default=0, description="Bytes.")
    numberOfFiles: int = Field(default=0, description="Files.")
    creationTime: AwareDatetime | None = Field(default=None, description="When taken.")
    instrumentIds: list[str] = Field(default_factory=list, description="Instruments.")
    proposalIds: list[str] = Field(default_factory=list, description="Proposals and beamtimes.")
    creationLocation: str | None = Field(default=None, description="`/<facility>/<instrument>`.")
    keywords: list[str] = Field(default_factory=list, description="Keywords.")


class ProposalSummary(Document):
    """What a proposal DOI shows of its proposal or beamtime; copied like `DatasetSummary`."""

    proposalId: str = Field(description="Proposal or beamtime id.")
    type: str = Field(description="`DOOR Proposal` or `Beamtime`.")
    parentProposalId: str | None = Field(default=None, description="Parent proposal (beamtimes).")
    title: str | None = Field(default=None, description="Title.")
    startTime: AwareDatetime | None = Field(default=None, description="Start.")
    endTime: AwareDatetime | None = Field(default=None, description="End.")
    instrumentIds: list[str] = Field(default_factory=list, description="Instruments.")


class PublicationRecord(Document):
    """The input of the one DataCite / Dublin Core mapping."""

    publication: PublishedData = Field(description="The PublishedData document.")
    datasets: list[DatasetSummary] = Field(
        default_factory=list, description="Summaries of the published datasets."
    )
    proposal: ProposalSummary | None = Field(
        default=None, description="The proposal or beamtime of a proposal DOI."
    )
