"""The rules of minting, without I/O: which DOI, what is stored, what DataCite gets, what is said.

Everything the handler needs to decide is computed here from plain values, so every rule is a unit
test away; the handler only sequences the effects (store before calling out, publish after).
"""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scicat_schemas.datacite import (
    contributor_to_datacite,
    creator_to_datacite,
    datacite_attributes,
    datacite_xml,
    funding_to_datacite,
    geo_location_to_datacite,
    related_to_datacite,
)
from scicat_schemas.documents import (
    Dataset,
    DatasetSummary,
    Proposal,
    ProposalSummary,
    PublicationRecord,
    PublishedData,
)
from scicat_schemas.events import (
    CloudEvent,
    DatasetStored,
    DatasetStoredData,
    PublicationRegistered,
    PublicationRegisteredData,
    PublicationRequestedData,
)

REGISTERED_STATUSES = frozenset({"registered", "amended"})
"""Statuses of a DOI DataCite has accepted; nothing here ever moves a publication out of them."""

_SLUG_MAX = 48
_HASH_CHARS = 10


class UnpublishableRequest(ValueError):
    """A publication request that can never be registered as it stands; the reason says why."""


def doi_suffix(publication_id: str) -> str:
    """A DOI suffix that is the same every time for one publication id: `<slug>-<hash>`.

    Deterministic, because the same publication is requested more than once (Kafka redelivery, a
    dead letter replayed, a second replica after a rebalance) and a registered DOI is permanent: a
    random suffix would mint a second DOI for one publication. The slug keeps the DOI recognisable
    to people; slugging folds case and drops characters, so distinct ids can share a slug
    (`Run A` and `run-a`), hence the hash of the exact id. Lower case and `[a-z0-9-]` only,
    because DOIs are case-insensitive (DataCite answers in lower case) and must survive URLs.
    """
    ascii_id = unicodedata.normalize("NFKD", publication_id).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_id.lower()).strip("-")[:_SLUG_MAX].strip("-")
    digest = hashlib.sha256(publication_id.encode()).hexdigest()[:_HASH_CHARS]
    return f"{slug}-{digest}" if slug else digest


def doi_for(prefix: str, publication_id: str) -> str:
    return f"{prefix}/{doi_suffix(publication_id)}"


def require_datasets(pids: list[str], found: Iterable[Dataset]) -> list[Dataset]:
    """The requested datasets in request order, or a refusal naming every missing pid."""
    by_pid = {dataset.pid: dataset for dataset in found}
    missing = [pid for pid in pids if pid not in by_pid]
    if missing:
        raise UnpublishableRequest(
            f"datasets not found in the catalogue: {', '.join(missing)}; ingest them (or correct "
            "the pids) and replay the request from doi-minter.dlq"
        )
    return [by_pid[pid] for pid in dict.fromkeys(pids)]


def check_registrable(existing: PublishedData | None, request: PublicationRequestedData) -> None:
    """Refuse what would hijack another publication's DOI or revive a withdrawn one."""
    if existing is None:
        return
    if existing.publicationId != request.publication_id:
        raise UnpublishableRequest(
            f"DOI {existing.doi} already belongs to publication {existing.publicationId!r}, not "
            f"{request.publication_id!r}; choose another publication id"
        )
    if existing.status == "withdrawn":
        raise UnpublishableRequest(
            f"publication {request.publication_id!r} (DOI {existing.doi}) was withdrawn; a "
            "withdrawn DOI is not made findable again automatically"
        )
    if request.draft and existing.status in REGISTERED_STATUSES:
        raise UnpublishableRequest(
            f"publication {request.publication_id!r} (DOI {existing.doi}) is registered; a "
            "registered DOI cannot become a draft again (amend or withdraw it instead)"
        )


def require_proposal(proposal_id: str, found: Proposal | None) -> Proposal:
    if found is None:
        raise UnpublishableRequest(
            f"proposal {proposal_id!r} not found in the catalogue (collection Proposal); import it "
            "(beamtime.updated) and replay the request from doi-minter.dlq"
        )
    return found


def proposal_summary(proposal: Proposal) -> ProposalSummary:
    return ProposalSummary(
        proposalId=proposal.proposalId,
        type=proposal.type,
        parentProposalId=proposal.parentProposalId,
        title=proposal.title,
        startTime=proposal.startTime,
        endTime=proposal.endTime,
        instrumentIds=proposal.instrumentIds,
    )


def dataset_summary(dataset: Dataset) -> DatasetSummary:
    return DatasetSummary(
        pid=dataset.pid,
        datasetName=dataset.datasetName,
        size=dataset.size,
        numberOfFiles=dataset.numberOfFiles,
        creationTime=dataset.creationTime,
        instrumentIds=dataset.instrumentIds,
        proposalIds=dataset.proposalIds,
        creationLocation=dataset.creationLocation,
        keywords=dataset.keywords,
    )


@dataclass(frozen=True)
class ResourceTypeDefaults:
    """What a request that names no resource type gets, by what it publishes."""

    proposal_general: str = "Other"
    proposal_text: str = "Proposal"


def resource_type(
    request: PublicationRequestedData, defaults: ResourceTypeDefaults
) -> dict[str, str]:
    """DataCite `types`: a proposal DOI defaults to the configured type, datasets to `Dataset`."""
    if request.proposal_id is None:
        general = request.resource_type_general or "Dataset"
        return {"resourceTypeGeneral": general, "resourceType": request.resource_type or general}
    return {
        "resourceTypeGeneral": request.resource_type_general or defaults.proposal_general,
        "resourceType": request.resource_type or defaults.proposal_text,
    }


def publication_metadata(
    request: PublicationRequestedData,
    *,
    default_publisher: str,
    types: ResourceTypeDefaults | None = None,
    links: Iterable[dict[str, str]] = (),
) -> dict[str, Any]:
    """PublishedData `metadata`: SciCat's names, DataCite's shapes (the shared mapping).

    `links` are the related identifiers the catalogue knows (proposal DOI ↔ dataset DOIs); they
    follow the ones the request names.
    """
    metadata: dict[str, Any] = {
        "creators": [creator_to_datacite(**creator.model_dump()) for creator in request.creators],
        "contributors": [contributor_to_datacite(**c.model_dump()) for c in request.contributors],
        "publisher": request.publisher or default_publisher,
        "publicationYear": request.publication_year,
        "resourceType": resource_type(request, types or ResourceTypeDefaults()),
        "keywords": list(request.keywords),
        "language": request.language or "en",
        "formats": list(request.formats),
        "geoLocations": [geo_location_to_datacite(**g.model_dump()) for g in request.geo_locations],
        "fundingReferences": [
            funding_to_datacite(**f.model_dump()) for f in request.funding_references
        ],
    }
    related = [related_to_datacite(**r.model_dump()) for r in request.related_identifiers]
    related += [link for link in links if link not in related]
    metadata["relatedIdentifiers"] = related
    if request.license:
        metadata["license"] = request.license
    return metadata


def catalogue_links(
    *, parents: Iterable[PublishedData], parts: Iterable[PublishedData], own_doi: str
) -> list[dict[str, str]]:
    """Links between DOIs of one proposal: datasets `IsPartOf` the proposal DOI; it `HasPart`s."""
    links = [
        related_to_datacite(
            identifier=p.doi,
            identifier_type="DOI",
            relation_type="IsPartOf",
            resource_type_general=p.metadata.get("resourceType", {}).get("resourceTypeGeneral"),
        )
        for p in parents
        if p.doi != own_doi
    ]
    links += [
        related_to_datacite(
            identifier=p.doi,
            identifier_type="DOI",
            relation_type="HasPart",
            resource_type_general=p.metadata.get("resourceType", {}).get("resourceTypeGeneral"),
        )
        for p in parts
        if p.doi != own_doi
    ]
    return links


def pending_publication(
    request: PublicationRequestedData,
    *,
    doi: str,
    datasets: list[Dataset],
    landing_page: str,
    default_publisher: str,
    existing: PublishedData | None,
    now: datetime,
    types: ResourceTypeDefaults | None = None,
    links: Iterable[dict[str, str]] = (),
) -> PublishedData:
    """The PublishedData stored before DataCite is called: `public` (or `private` for a draft)."""
    return PublishedData(
        doi=doi,
        publicationId=request.publication_id,
        title=request.title,
        abstract=request.abstract,
        datasetPids=[d.pid for d in datasets],
        status="private" if request.draft else "public",
        numberOfFiles=sum(d.numberOfFiles for d in datasets),
        sizeOfArchive=sum(d.size for d in datasets),
        landingPage=landing_page,
        proposalId=request.proposal_id,
        metadata=publication_metadata(
            request, default_publisher=default_publisher, types=types, links=links
        ),
        createdAt=existing.createdAt if existing and existing.createdAt else now,
        updatedAt=now,
    )


def registered_record(
    pending: PublishedData,
    summaries: list[DatasetSummary],
    *,
    existing: PublishedData | None,
    now: datetime,
    proposal: ProposalSummary | None = None,
    amended: bool = False,
) -> PublicationRecord:
    """The record as it will be once DataCite accepts it.

    DataCite receives the metadata of this record, registration date included, so the XML at
    DataCite, the landing page and OAI-PMH agree. A DOI registered before keeps its first
    registration time, and becomes `amended` when what it describes changed (by an amendment or
    by a new request with other metadata); a redelivered request changes nothing, so it stays.
    """
    first_registered = (
        existing.registeredTime
        if existing and existing.status in REGISTERED_STATUSES and existing.registeredTime
        else now
    )
    if amended or (
        existing is not None
        and existing.status in REGISTERED_STATUSES
        and _described(existing) != _described(pending)
    ):
        status = "amended"
    elif existing and existing.status in REGISTERED_STATUSES:
        status = existing.status
    else:
        status = "registered"
    publication = pending.model_copy(update={"status": status, "registeredTime": first_registered})
    return PublicationRecord(publication=publication, datasets=summaries, proposal=proposal)


def _described(publication: PublishedData) -> tuple[Any, ...]:
    """What a DOI's metadata says, without bookkeeping (times, status)."""
    return (
        publication.title,
        publication.abstract,
        publication.datasetPids,
        publication.proposalId,
        publication.metadata,
    )


def datacite_metadata(record: PublicationRecord, *, landing_page: str) -> dict[str, Any]:
    """DataCite attributes from the one shared mapping, plus the landing page the DOI opens."""
    return {**datacite_attributes(record), "url": landing_page}


def registration_attributes(
    record: PublicationRecord, *, landing_page: str, draft: bool = False
) -> dict[str, Any]:
    """A complete `PUT /dois/{doi}` body: full metadata, `publish`, and the same metadata as XML.

    Complete, because DataCite replaces arrays wholesale; `publish`, because it moves a draft or
    registered DOI to findable and is ignored on a findable one: a repeated PUT converges. A
    draft sends no event: DataCite creates (or keeps) a draft, which reserves the DOI.
    Raises `UnpublishableRequest` when the shared mapping cannot render the record.
    """
    try:
        metadata = datacite_metadata(record, landing_page=landing_page)
    except ValueError as error:
        raise UnpublishableRequest(str(error)) from error
    event = {} if draft else {"event": "publish"}
    return {**metadata, **event, "xml": base64.b64encode(datacite_xml(metadata)).decode()}


def dataset_stored(dataset: Dataset, *, source: str) -> DatasetStored:
    """`dataset.stored` for a dataset now published; the id repeats when its revision does."""
    return DatasetStored(
        id=f"{dataset.pid}#{dataset.pipelineRevision}",
        source=source,
        subject=dataset.pid,
        data=DatasetStoredData(dataset=dataset),
    )


def publication_registered(
    record: PublicationRecord, *, source: str, request: CloudEvent
) -> PublicationRegistered:
    """`publication.registered`, with an id derived from the request it answers.

    Redelivering one request re-publishes the same id (consumers recognise the duplicate); a
    later request for the same publication (updated metadata) gets a new id, so it is not
    mistaken for a duplicate.
    """
    digest = hashlib.sha256(request.identity.encode()).hexdigest()[:16]
    return PublicationRegistered(
        id=f"{record.publication.doi}#registered:{digest}",
        source=source,
        subject=record.publication.doi,
        data=PublicationRegisteredData(record=record),
    )
