"""OAI-PMH 2.0 response documents, built with lxml. Pure: data in, bytes out.

Element order follows the XSD types (`OAI-PMHtype`, `IdentifyType`, `headerType`...), because
harvesters validate and some parse positionally. Stored metadata (XML this service rendered with
lxml) goes into numbered slots after serialization, see `_serialize_with_metadata`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from lxml import etree

from scicat_oai_provider.domain import MetadataFormat, OaiRecord, SetEntry
from scicat_oai_provider.protocol import Granularity, OaiError, format_datestamp
from scicat_schemas.datacite import DC_NS, OAI_DC_NS, OAI_DC_SCHEMA_LOCATION

if TYPE_CHECKING:
    from scicat_oai_provider.listing import ListEntry

OAI_NS = "http://www.openarchives.org/OAI/2.0/"
OAI_SCHEMA = "http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd"
OAI_IDENTIFIER_NS = "http://www.openarchives.org/OAI/2.0/oai-identifier"
OAI_IDENTIFIER_SCHEMA = "http://www.openarchives.org/OAI/2.0/oai-identifier.xsd"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = f"{{{XSI_NS}}}schemaLocation"


@dataclass(frozen=True)
class RepositoryIdentity:
    """What Identify says about the repository."""

    name: str
    base_url: str
    admin_email: str
    repository_identifier: str
    sample_identifier: str


@dataclass(frozen=True)
class Envelope:
    """`responseDate` and `request`; `arguments` None after badVerb/badArgument (§3.2)."""

    response_date: datetime
    base_url: str
    arguments: Mapping[str, str] | None


@dataclass(frozen=True)
class ResumptionToken:
    """An empty `value` marks the last page of a multi-page list; `expires` None for it."""

    value: str
    complete_list_size: int
    cursor: int
    expires: datetime | None = None


def _oai(tag: str) -> str:
    return f"{{{OAI_NS}}}{tag}"


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, _oai(tag))
    if text is not None:
        element.text = text
    return element


def _document(envelope: Envelope) -> etree._Element:
    root = etree.Element(_oai("OAI-PMH"), nsmap={None: OAI_NS, "xsi": XSI_NS})
    root.set(SCHEMA_LOCATION, f"{OAI_NS} {OAI_SCHEMA}")
    _sub(root, "responseDate", format_datestamp(envelope.response_date))
    request = _sub(root, "request", envelope.base_url)
    for key, value in (envelope.arguments or {}).items():
        request.set(key, value)
    return root


def serialize(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def error_document(envelope: Envelope, errors: Iterable[OaiError]) -> bytes:
    root = _document(envelope)
    for error in errors:
        _sub(root, "error", error.message).set("code", error.code.value)
    return serialize(root)


def identify_document(
    envelope: Envelope, identity: RepositoryIdentity, *, earliest_datestamp: datetime
) -> bytes:
    root = _document(envelope)
    identify = _sub(root, "Identify")
    _sub(identify, "repositoryName", identity.name)
    _sub(identify, "baseURL", identity.base_url)
    _sub(identify, "protocolVersion", "2.0")
    _sub(identify, "adminEmail", identity.admin_email)
    _sub(identify, "earliestDatestamp", format_datestamp(earliest_datestamp))
    _sub(identify, "deletedRecord", "persistent")
    _sub(identify, "granularity", Granularity.SECONDS.value)
    _sub(identify, "compression", "gzip")
    description = _sub(identify, "description")
    oai_identifier = etree.SubElement(
        description,
        f"{{{OAI_IDENTIFIER_NS}}}oai-identifier",
        nsmap={None: OAI_IDENTIFIER_NS, "xsi": XSI_NS},
    )
    oai_identifier.set(SCHEMA_LOCATION, f"{OAI_IDENTIFIER_NS} {OAI_IDENTIFIER_SCHEMA}")
    for tag, text in (
        ("scheme", "oai"),
        ("repositoryIdentifier", identity.repository_identifier),
        ("delimiter", ":"),
        ("sampleIdentifier", identity.sample_identifier),
    ):
        etree.SubElement(oai_identifier, f"{{{OAI_IDENTIFIER_NS}}}{tag}").text = text
    return serialize(root)


def metadata_formats_document(envelope: Envelope, formats: Iterable[MetadataFormat]) -> bytes:
    root = _document(envelope)
    listing = _sub(root, "ListMetadataFormats")
    for fmt in formats:
        node = _sub(listing, "metadataFormat")
        _sub(node, "metadataPrefix", fmt.prefix)
        _sub(node, "schema", fmt.schema)
        _sub(node, "metadataNamespace", fmt.namespace)
    return serialize(root)


def _dublin_core_description(parent: etree._Element, text: str) -> None:
    """A `setDescription`: the XSD wants a schema-valid foreign element, so oai_dc it is."""
    dc = etree.SubElement(
        _sub(parent, "setDescription"),
        f"{{{OAI_DC_NS}}}dc",
        nsmap={"oai_dc": OAI_DC_NS, "dc": DC_NS, "xsi": XSI_NS},
    )
    dc.set(SCHEMA_LOCATION, f"{OAI_DC_NS} {OAI_DC_SCHEMA_LOCATION}")
    etree.SubElement(dc, f"{{{DC_NS}}}description").text = text


def sets_document(
    envelope: Envelope, sets: Iterable[SetEntry], *, descriptions: Mapping[str, str]
) -> bytes:
    root = _document(envelope)
    listing = _sub(root, "ListSets")
    for entry in sets:
        node = _sub(listing, "set")
        _sub(node, "setSpec", entry.spec)
        _sub(node, "setName", entry.name)
        if description := descriptions.get(entry.spec):
            _dublin_core_description(node, description)
    return serialize(root)


def _header(parent: etree._Element, record: OaiRecord) -> None:
    header = _sub(parent, "header")
    if record.deleted:
        header.set("status", "deleted")
    _sub(header, "identifier", record.identifier)
    _sub(header, "datestamp", format_datestamp(record.datestamp))
    for spec in record.set_specs:
        _sub(header, "setSpec", spec)


_SLOT = "oai-metadata"
_SLOT_PATTERN = re.compile(rb"<\?" + _SLOT.encode() + rb" (\d+)\?>")


def _record(parent: etree._Element, record: OaiRecord, prefix: str, slots: list[str]) -> None:
    """A record whose metadata is a numbered slot, filled by `_serialize_with_metadata`."""
    node = _sub(parent, "record")
    _header(node, record)
    if not record.deleted:
        metadata = _sub(node, "metadata")
        metadata.append(etree.ProcessingInstruction(_SLOT, str(len(slots))))
        slots.append(record.metadata[prefix])


def _serialize_with_metadata(root: etree._Element, slots: list[str]) -> bytes:
    """Serialize, then put each stored rendering where its slot is.

    The stored metadata is XML that this service serialized with lxml from the shared mapping
    (each root declares its own namespaces), so it is inserted as bytes: re-parsing every record
    on every page would double the cost of a harvest. A slot is a processing instruction, which
    no text or attribute can produce, so only real slots are replaced.
    """
    document = serialize(root)
    if not slots:
        return document
    encoded = [slot.encode() for slot in slots]
    return _SLOT_PATTERN.sub(lambda match: encoded[int(match.group(1))], document)


def record_document(envelope: Envelope, record: OaiRecord, prefix: str) -> bytes:
    """GetRecord: a deleted record is a header with `status="deleted"` and no metadata."""
    root = _document(envelope)
    slots: list[str] = []
    _record(_sub(root, "GetRecord"), record, prefix, slots)
    return _serialize_with_metadata(root, slots)


def header_xml(record: OaiRecord) -> str:
    """The record's `<header>` serialized once, to be joined into list pages.

    It carries no namespace declaration: inside a list response the OAI-PMH namespace is the
    default one already, so the header is in it, exactly as if it had been built in place.
    """
    holder = etree.Element(_oai("ListIdentifiers"), nsmap={None: OAI_NS})
    _header(holder, record)
    serialized = str(etree.tostring(holder[0], encoding="unicode"))
    if not serialized.startswith(_HEADER_WITH_NAMESPACE):
        raise AssertionError(f"unexpected header serialization: {serialized[:80]!r}")
    return "<header" + serialized[len(_HEADER_WITH_NAMESPACE) :]


_HEADER_WITH_NAMESPACE = f'<header xmlns="{OAI_NS}"'


def list_document(
    envelope: Envelope,
    *,
    verb: str,
    entries: Iterable[ListEntry],
    token: ResumptionToken | None,
) -> bytes:
    """ListIdentifiers (headers) or ListRecords (records), then the resumptionToken if any.

    The envelope is built with lxml; the entries' stored headers and metadata are joined into
    it as text (see `_serialize_with_metadata`), so a page costs a string join per record.
    """
    root = _document(envelope)
    listing = _sub(root, verb)
    listing.append(etree.ProcessingInstruction(_SLOT, "0"))
    if verb == "ListIdentifiers":
        body = "".join(entry.header for entry in entries)
    else:
        body = "".join(
            f"<record>{entry.header}</record>"
            if entry.metadata is None
            else f"<record>{entry.header}<metadata>{entry.metadata}</metadata></record>"
            for entry in entries
        )
    if token is not None:
        element = _sub(listing, "resumptionToken", token.value or None)
        if token.expires is not None:
            element.set("expirationDate", format_datestamp(token.expires))
        element.set("completeListSize", str(token.complete_list_size))
        element.set("cursor", str(token.cursor))
    return _serialize_with_metadata(root, [body])
