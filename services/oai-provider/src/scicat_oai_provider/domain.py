"""The OAI-PMH read model: one record per DOI, projected from publication events. Pure, no I/O.

Every dissemination is rendered once, when the event arrives, through the shared mapping
(`scicat_schemas.datacite.datacite_attributes`), the same function the doi-minter sends to
DataCite, so the DOI registration and every OAI-PMH format agree by construction.

Datestamps follow OAI-PMH §2.7.1: a record's datestamp is the time its current content became
visible in this store (seconds, UTC), never the upstream event time, because incremental harvests
select on it. It changes exactly when what a harvester would receive changes (the rendered XML, the
sets or the deleted flag); a redelivered event that renders the same content keeps it.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from lxml import etree

from scicat_oai_provider.sets import (
    TOP_LEVEL_SETS,
    SetEntry,
    minimal_specs,
    publication_sets,
    set_ancestors,
    slug,
    with_ancestors,
)
from scicat_schemas.datacite import (
    KERNEL_NS,
    KERNEL_SCHEMA_LOCATION,
    OAI_DATACITE_NS,
    OAI_DATACITE_SCHEMA_LOCATION,
    OAI_DC_NS,
    OAI_DC_SCHEMA_LOCATION,
    datacite_attributes,
    datacite_element,
    dublin_core_element,
    oai_datacite_element,
)
from scicat_schemas.documents import PublicationRecord

__all__ = [
    "TOP_LEVEL_SETS",
    "SetEntry",
    "set_ancestors",
    "slug",
    "with_ancestors",
]

OAI_DC = "oai_dc"
OAI_DATACITE = "oai_datacite"
DATACITE = "datacite"

MAX_APPLIED_EVENTS = 20
"""Events remembered per record to recognise redeliveries; a DOI sees only a handful in its life."""

_DOI = re.compile(r"10\.\d{4,9}/\S+")
_LOCAL_IDENTIFIER_SAFE = frozenset(string.ascii_letters + string.digits + ";/?:@&=+$,-_.!~*'()")


@dataclass(frozen=True)
class MetadataFormat:
    prefix: str
    schema: str
    namespace: str


METADATA_FORMATS: dict[str, MetadataFormat] = {
    fmt.prefix: fmt
    for fmt in (
        MetadataFormat(OAI_DC, OAI_DC_SCHEMA_LOCATION, OAI_DC_NS),
        MetadataFormat(OAI_DATACITE, OAI_DATACITE_SCHEMA_LOCATION, OAI_DATACITE_NS),
        MetadataFormat(DATACITE, KERNEL_SCHEMA_LOCATION, KERNEL_NS),
    )
}
"""Every format this repository disseminates; the schema URL is the one in each root's
`xsi:schemaLocation`, as OAI-PMH §3.4 requires."""


class InvalidPublication(ValueError):
    """The event's publication cannot be disseminated as it is; the message says what to fix."""


@dataclass(frozen=True)
class AppliedEvent:
    """An event (CloudEvent `source`+`id`) together with the content it rendered to.

    Keeping the content hash means a redelivery is recognised, while a deliberate replay after a
    change of the shared mapping still re-renders (and so re-dates) the record.
    """

    event: str
    content: str


@dataclass(frozen=True)
class RecordContent:
    """What one event says a record should disseminate."""

    identifier: str
    doi: str
    publication_id: str | None
    deleted: bool
    sets: tuple[SetEntry, ...]
    formats: tuple[str, ...]
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        """Fingerprint of everything a harvester receives, so equal hashes mean nothing changed."""
        canonical = json.dumps(
            {
                "deleted": self.deleted,
                "sets": [[s.spec, s.name] for s in self.sets],
                "formats": list(self.formats),
                "metadata": dict(sorted(self.metadata.items())),
            },
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class OaiRecord:
    """A stored record. `metadata` may hold only the prefix a list request asked for."""

    identifier: str
    doi: str
    publication_id: str | None
    datestamp: datetime
    deleted: bool
    sets: tuple[SetEntry, ...]
    formats: tuple[str, ...]
    metadata: Mapping[str, str]
    content_hash: str
    applied: tuple[AppliedEvent, ...] = ()
    version: int = 0

    @property
    def set_specs(self) -> tuple[str, ...]:
        """The minimal setSpecs a header lists (`a:b`, not also its ancestor `a`)."""
        return minimal_specs(s.spec for s in self.sets)

    @property
    def key(self) -> RecordKey:
        return RecordKey(self.datestamp, self.identifier)


@dataclass(frozen=True, order=True)
class RecordKey:
    """Position in the harvest order `(datestamp, identifier)`; unique, so paging is exact."""

    datestamp: datetime
    identifier: str


@dataclass(frozen=True)
class ListQuery:
    """A selective harvest: one format, optional set, inclusive `[from_, until]` window."""

    metadata_prefix: str
    set_spec: str | None
    from_: datetime | None
    until: datetime


def to_seconds(moment: datetime) -> datetime:
    """UTC, fractions dropped: the repository's granularity is `YYYY-MM-DDThh:mm:ssZ`."""
    return moment.astimezone(UTC).replace(microsecond=0)


def oai_identifier(repository_identifier: str, doi: str) -> str:
    """`oai:<namespace>:<doi>`; `/` and `:` stay, other reserved characters are %-escaped."""
    local = "".join(
        char if char in _LOCAL_IDENTIFIER_SAFE else "".join(f"%{b:02X}" for b in char.encode())
        for char in doi
    )
    return f"oai:{repository_identifier}:{local}"


def _checked_doi(doi: str, publication_id: str) -> str:
    doi = doi.strip()
    if not _DOI.fullmatch(doi):
        raise InvalidPublication(
            f"publication {publication_id!r} carries DOI {doi!r}, which is not a DOI (expected "
            "10.<prefix>/<suffix>); correct the event at its producer and send it again"
        )
    return doi


def _xml_text(element: etree._Element) -> str:
    return str(etree.tostring(element, encoding="unicode"))


def registered_content(
    record: PublicationRecord,
    *,
    repository_identifier: str,
    datacentre_symbol: str,
    facility: str,
    proposal_parents: Mapping[str, str] | None = None,
) -> RecordContent:
    """Render every format of a registered publication from the one shared mapping.

    `proposal_parents` (beamtime id → proposal id, from the `Proposal` collection) places
    beamtimes under their proposals in the set hierarchy.
    """
    doi = _checked_doi(record.publication.doi, record.publication.publicationId)
    try:
        attributes = datacite_attributes(record)
        metadata = {
            OAI_DC: _xml_text(dublin_core_element(attributes)),
            OAI_DATACITE: _xml_text(
                oai_datacite_element(attributes, datacentre_symbol=datacentre_symbol)
            ),
            DATACITE: _xml_text(datacite_element(attributes)),
        }
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidPublication(
            f"publication {record.publication.publicationId!r} (DOI {doi}) cannot be rendered as "
            f"DataCite/Dublin Core: {type(error).__name__}: {error}; check its metadata "
            "(creators need a `name`, publicationYear a number)"
        ) from error
    return RecordContent(
        identifier=oai_identifier(repository_identifier, doi),
        doi=doi,
        publication_id=record.publication.publicationId,
        deleted=False,
        sets=publication_sets(record, facility=facility, proposal_parents=proposal_parents or {}),
        formats=tuple(metadata),
        metadata=metadata,
    )


def withdrawn_content(
    current: OaiRecord | None, *, repository_identifier: str, doi: str, publication_id: str
) -> RecordContent:
    """A tombstone: the header stays (sets and formats too) so harvesters learn of the deletion.

    A DOI never registered here gets a tombstone without formats: harvesters never received it,
    and ListMetadataFormats answers `noMetadataFormats` for it.
    """
    doi = _checked_doi(doi, publication_id)
    return RecordContent(
        identifier=oai_identifier(repository_identifier, doi),
        doi=doi,
        publication_id=publication_id,
        deleted=True,
        sets=current.sets if current else (),
        formats=current.formats if current else (),
    )


def apply_content(
    current: OaiRecord | None, content: RecordContent, *, event: str, now: datetime
) -> OaiRecord | None:
    """The record after `event`, or None when there is nothing to write.

    - the same event with the same rendering was already applied → None (redelivery);
    - the content is unchanged → the event is remembered, the datestamp kept;
    - otherwise → new content with datestamp `now` (never earlier than the previous datestamp,
      so a clock that steps back cannot hide a change from incremental harvests).
    """
    marker = AppliedEvent(event, content.content_hash)
    if current is not None and marker in current.applied:
        return None
    applied = ((*current.applied, marker) if current else (marker,))[-MAX_APPLIED_EVENTS:]
    version = current.version + 1 if current else 1
    if current is not None and current.content_hash == content.content_hash:
        return replace(current, applied=applied, version=version)
    stamp = to_seconds(now)
    if current is not None and stamp < current.datestamp:
        stamp = current.datestamp
    return OaiRecord(
        identifier=content.identifier,
        doi=content.doi,
        publication_id=content.publication_id,
        datestamp=stamp,
        deleted=content.deleted,
        sets=content.sets,
        formats=content.formats,
        metadata=dict(content.metadata),
        content_hash=content.content_hash,
        applied=applied,
        version=version,
    )


def closed_until(requested: datetime | None, response_date: datetime) -> datetime:
    """The `until` a list is evaluated with: at most the last second that has fully passed.

    Records keep arriving during the current second; a list that included it could miss a record
    stamped later in that second, or (frozen into a token) repeat one updated in it. Harvesters
    continue from `responseDate`, inclusive, so the current second is in their next harvest.
    """
    last_closed = to_seconds(response_date) - timedelta(seconds=1)
    return last_closed if requested is None else min(requested, last_closed)
