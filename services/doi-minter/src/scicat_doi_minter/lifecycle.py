"""The rules of amending and withdrawing a publication, without I/O.

SciCat v4 moves a PublishedData private → public → registered → amended; the pipeline adds
`withdrawn`. An amendment changes the metadata of a DOI DataCite already holds; a withdrawal hides
the DOI (DataCite keeps it resolvable to a tombstone, as every DOI is permanent) and unpublishes its
datasets. Both are idempotent: applying one twice leaves the same documents and announces the same
events.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from scicat_doi_minter.domain import REGISTERED_STATUSES, UnpublishableRequest
from scicat_schemas.documents import PublishedData
from scicat_schemas.events import (
    PublicationDescription,
    PublicationRequestedData,
    PublicationWithdrawn,
    PublicationWithdrawnData,
)


def require_amendable(existing: PublishedData | None, *, publication_id: str) -> PublishedData:
    """Only a publication DataCite accepted can be amended; anything else waits for its request."""
    if existing is None or existing.publicationId != publication_id:
        raise UnpublishableRequest(
            f"publication {publication_id!r} is not known; an amendment needs its "
            "publication.requested first"
        )
    if existing.status == "withdrawn":
        raise UnpublishableRequest(
            f"publication {publication_id!r} (DOI {existing.doi}) was withdrawn; it cannot be "
            "amended"
        )
    if existing.status not in REGISTERED_STATUSES:
        raise UnpublishableRequest(
            f"publication {publication_id!r} (DOI {existing.doi}) is not registered yet (status "
            f"{existing.status!r}); replay the amendment from doi-minter.dlq once it is"
        )
    return existing


def amended_request(
    original: dict[str, Any] | None, changes: PublicationDescription, *, doi: str
) -> PublicationRequestedData:
    """The request as if it had asked for the amended metadata from the start.

    Rebuilding the whole request (rather than patching stored DataCite metadata) keeps one path
    from request to DataCite attributes, so an amended DOI is rendered exactly like a new one.
    """
    if original is None:
        raise UnpublishableRequest(
            f"DOI {doi} was registered without a stored request, so it cannot be amended here; "
            "send a new publication.requested with the full metadata instead"
        )
    merged = {**original, **changes.model_dump(exclude_unset=True, exclude_none=True)}
    return PublicationRequestedData.model_validate(merged)


def require_withdrawable(existing: PublishedData | None, *, publication_id: str) -> PublishedData:
    if existing is None or existing.publicationId != publication_id:
        raise UnpublishableRequest(
            f"publication {publication_id!r} is not known; nothing to withdraw"
        )
    return existing


def was_at_datacite(publication: PublishedData) -> bool:
    """Registered, amended, or withdrawn after being registered: DataCite holds the DOI."""
    return publication.status in REGISTERED_STATUSES or (
        publication.status == "withdrawn" and publication.registeredTime is not None
    )


def withdrawn_publication(
    publication: PublishedData, *, reason: str, now: datetime
) -> PublishedData:
    """The tombstone state; a repeated withdrawal keeps the first time and reason."""
    if publication.status == "withdrawn":
        return publication
    return publication.model_copy(
        update={
            "status": "withdrawn",
            "withdrawnTime": now,
            "withdrawalReason": reason,
            "updatedAt": now,
        }
    )


def datasets_to_unpublish(pids: Iterable[str], *, still_published: Iterable[str]) -> list[str]:
    """A dataset another registered publication still names stays published."""
    keep = set(still_published)
    return [pid for pid in dict.fromkeys(pids) if pid not in keep]


def publication_withdrawn(
    publication: PublishedData, *, source: str, unpublished: list[str]
) -> PublicationWithdrawn:
    """`publication.withdrawn`, one id per DOI: a DOI is withdrawn once, however often asked."""
    if publication.withdrawnTime is None:
        raise ValueError(f"DOI {publication.doi} is not withdrawn")
    return PublicationWithdrawn(
        id=f"{publication.doi}#withdrawn",
        source=source,
        subject=publication.doi,
        data=PublicationWithdrawnData(
            publication_id=publication.publicationId,
            doi=publication.doi,
            withdrawn_at=publication.withdrawnTime,
            reason=publication.withdrawalReason,
            dataset_pids=unpublished,
        ),
    )
