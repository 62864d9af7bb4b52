"""What a landing page says, derived from the same DataCite attributes DataCite received.

Pure functions, so the citation, the sizes and the schema.org JSON-LD are unit-tested without a
server; `landing.py` only fetches the record and renders the template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from scicat_doi_minter.citations import StyledCitation, citations
from scicat_schemas.documents import PublicationRecord

DOI_RESOLVER = "https://doi.org/"
SCHEMA_ORG_TYPES = {
    "Dataset": "Dataset",
    "Collection": "Collection",
    "Project": "ResearchProject",
    "Software": "SoftwareSourceCode",
}
"""DataCite `resourceTypeGeneral` → schema.org type, as DataCite's own schema.org export maps them;
anything else (a proposal DOI's `Other`) is a `CreativeWork`, so it is not claimed as a dataset."""
_UNITS = ("bytes", "kB", "MB", "GB", "TB", "PB", "EB")


@dataclass(frozen=True)
class CreatorView:
    name: str
    orcid_url: str | None
    affiliation: str | None


@dataclass(frozen=True)
class DatasetView:
    pid: str
    name: str
    size: str
    files: int


@dataclass(frozen=True)
class LandingView:
    """Everything the landing template shows; strings are raw (the template escapes them)."""

    doi: str
    doi_url: str
    title: str
    abstract: str
    creators: list[CreatorView]
    publisher: str
    year: int
    license: str | None
    keywords: list[str]
    datasets: list[DatasetView]
    total_size: str
    citation: str
    citations: list[StyledCitation]
    json_ld: str
    status: str
    withdrawn_at: str | None
    withdrawal_reason: str | None
    resource_type: str
    proposal: str | None


def human_size(size: int) -> str:
    """Decimal units, as storage systems and DataCite `sizes` count them: 1 kB = 1000 bytes."""
    if size < 1000:
        return f"{size} bytes"
    value = float(size)
    for unit in _UNITS[1:]:
        value /= 1000
        if round(value, 1) < 1000 or unit == _UNITS[-1]:
            break
    return f"{value:.1f} {unit}"


def orcid_url(creator: dict[str, Any]) -> str | None:
    for identifier in creator.get("nameIdentifiers", []):
        if identifier.get("nameIdentifierScheme") == "ORCID":
            return str(identifier["nameIdentifier"])
    return None


def citation(attributes: dict[str, Any]) -> str:
    """DataCite's citation shape: `Creators (Year). Title. Publisher. https://doi.org/DOI`."""
    creators = "; ".join(c["name"] for c in attributes["creators"])
    title = attributes["titles"][0]["title"].rstrip(".")
    return (
        f"{creators} ({attributes['publicationYear']}). {title}. "
        f"{attributes['publisher']['name']}. {DOI_RESOLVER}{attributes['doi']}"
    )


def schema_org(record: PublicationRecord, attributes: dict[str, Any]) -> dict[str, Any]:
    """schema.org JSON-LD (`Dataset` for datasets), the form Google Dataset Search reads."""
    doi_url = f"{DOI_RESOLVER}{attributes['doi']}"
    document: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": SCHEMA_ORG_TYPES.get(attributes["types"]["resourceTypeGeneral"], "CreativeWork"),
        "@id": doi_url,
        "identifier": doi_url,
        "url": attributes.get("url"),
        "name": attributes["titles"][0]["title"],
        "description": record.publication.abstract,
        "creator": [_agent(c) for c in attributes["creators"]],
        "datePublished": (
            record.publication.registeredTime.date().isoformat()
            if record.publication.registeredTime
            else str(attributes["publicationYear"])
        ),
        "publisher": {"@type": "Organization", "name": attributes["publisher"]["name"]},
        "keywords": [s["subject"] for s in attributes.get("subjects", [])],
        "size": " / ".join(attributes.get("sizes", [])),
        "distribution": [
            {
                "@type": "DataDownload",
                "name": d.datasetName,
                "identifier": d.pid,
                "contentSize": human_size(d.size),
            }
            for d in record.datasets
        ],
    }
    if record.publication.metadata.get("license"):
        document["license"] = record.publication.metadata["license"]
    return document


def _agent(creator: dict[str, Any]) -> dict[str, Any]:
    organisation = creator.get("nameType") == "Organizational"
    agent: dict[str, Any] = {"@type": "Organization" if organisation else "Person"}
    if url := orcid_url(creator):
        agent["@id"] = url
    agent["name"] = creator["name"]
    if creator.get("givenName"):
        agent["givenName"] = creator["givenName"]
    if creator.get("familyName"):
        agent["familyName"] = creator["familyName"]
    if creator.get("affiliation"):
        agent["affiliation"] = [
            {"@type": "Organization", "name": a["name"]} for a in creator["affiliation"]
        ]
    return agent


def script_json(document: dict[str, Any]) -> str:
    """JSON safe inside `<script>`: `<`, `>` and `&` escaped, so a title cannot close the tag."""
    text = json.dumps(document, ensure_ascii=False, indent=2)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def landing_view(record: PublicationRecord, attributes: dict[str, Any]) -> LandingView:
    publication = record.publication
    return LandingView(
        doi=publication.doi,
        doi_url=f"{DOI_RESOLVER}{publication.doi}",
        title=publication.title,
        abstract=publication.abstract,
        creators=[
            CreatorView(
                name=c["name"],
                orcid_url=orcid_url(c),
                affiliation=", ".join(a["name"] for a in c.get("affiliation", [])) or None,
            )
            for c in attributes["creators"]
        ],
        publisher=attributes["publisher"]["name"],
        year=attributes["publicationYear"],
        license=publication.metadata.get("license"),
        keywords=[s["subject"] for s in attributes.get("subjects", [])],
        datasets=[
            DatasetView(
                pid=d.pid, name=d.datasetName, size=human_size(d.size), files=d.numberOfFiles
            )
            for d in record.datasets
        ],
        total_size=human_size(sum(d.size for d in record.datasets) or publication.sizeOfArchive),
        citation=citation(attributes),
        citations=citations(attributes),
        json_ld=script_json(schema_org(record, attributes)),
        status=publication.status,
        withdrawn_at=(
            publication.withdrawnTime.date().isoformat() if publication.withdrawnTime else None
        ),
        withdrawal_reason=publication.withdrawalReason,
        resource_type=attributes["types"].get("resourceType")
        or attributes["types"]["resourceTypeGeneral"],
        proposal=(
            f"{record.proposal.type} {record.proposal.proposalId}"
            + (f": {record.proposal.title}" if record.proposal.title else "")
            if record.proposal
            else None
        ),
    )
