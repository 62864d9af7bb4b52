"""The one SciCat → DataCite kernel-4 → Dublin Core mapping.

Facilities keep several copies of this mapping and they disagree (SciCat #1175, #1192). Here there
is one path: `datacite_attributes(record)` builds DataCite REST attributes from a publication
record; `datacite_xml`, `oai_datacite_xml` and `dublin_core_xml` are derived from those attributes
and nothing else, so the DOI registration, the landing page and every OAI-PMH format agree by
construction. XML is built with lxml (never string interpolation), so every value is escaped.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from scicat_schemas.datacite_terms import (
    PID_IDENTIFIER_TYPE,
    RESOURCE_TYPES_GENERAL,
    ContributorType,
    FunderIdentifierType,
    RelatedIdentifierType,
    RelationType,
    ResourceTypeGeneral,
    contributor_to_datacite,
    creator_to_datacite,
    funding_to_datacite,
    geo_location_to_datacite,
    related_to_datacite,
)
from scicat_schemas.documents import PublicationRecord

__all__ = [
    "DC_NS",
    "KERNEL_NS",
    "KERNEL_SCHEMA_LOCATION",
    "OAI_DATACITE_NS",
    "OAI_DATACITE_SCHEMA_LOCATION",
    "OAI_DC_NS",
    "OAI_DC_SCHEMA_LOCATION",
    "PID_IDENTIFIER_TYPE",
    "RESOURCE_TYPES_GENERAL",
    "ContributorType",
    "FunderIdentifierType",
    "RelatedIdentifierType",
    "RelationType",
    "ResourceTypeGeneral",
    "contributor_to_datacite",
    "creator_to_datacite",
    "datacite_attributes",
    "datacite_element",
    "datacite_xml",
    "dublin_core_element",
    "funding_to_datacite",
    "geo_location_to_datacite",
    "oai_datacite_element",
    "related_to_datacite",
    "to_bytes",
]

KERNEL_NS = "http://datacite.org/schema/kernel-4"
KERNEL_SCHEMA_LOCATION = "http://schema.datacite.org/meta/kernel-4/metadata.xsd"
OAI_DATACITE_NS = "http://schema.datacite.org/oai/oai-1.1/"
OAI_DATACITE_SCHEMA_LOCATION = "http://schema.datacite.org/oai/oai-1.1/oai.xsd"
OAI_DC_NS = "http://www.openarchives.org/OAI/2.0/oai_dc/"
OAI_DC_SCHEMA_LOCATION = "http://www.openarchives.org/OAI/2.0/oai_dc.xsd"
DC_NS = "http://purl.org/dc/elements/1.1/"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def datacite_attributes(record: PublicationRecord) -> dict[str, Any]:
    """DataCite REST `data.attributes` for a publication, without `event` and `url`.

    Arrays are always complete, because a DataCite PUT replaces arrays wholesale: sending the
    whole document makes a retried PUT converge.
    """
    publication = record.publication
    meta = publication.metadata
    missing = [k for k in ("creators", "publicationYear") if not meta.get(k)]
    missing += [
        f"creators[{i}].name" for i, c in enumerate(meta.get("creators", [])) if not c.get("name")
    ]
    if missing:
        raise ValueError(
            f"publication {publication.doi} cannot be mapped to DataCite: "
            f"missing {', '.join(missing)}"
        )
    total_size = sum(d.size for d in record.datasets) or publication.sizeOfArchive
    total_files = sum(d.numberOfFiles for d in record.datasets) or publication.numberOfFiles
    publisher = meta.get("publisher") or "Unknown publisher"
    types = dict(meta.get("resourceType") or {"resourceTypeGeneral": "Dataset"})
    types.setdefault("resourceType", types.get("resourceTypeGeneral", "Dataset"))
    if types["resourceTypeGeneral"] not in RESOURCE_TYPES_GENERAL:
        raise ValueError(
            f"publication {publication.doi} cannot be mapped to DataCite: resourceTypeGeneral "
            f"{types['resourceTypeGeneral']!r} is not in the DataCite 4.7 vocabulary"
        )
    subjects = [{"subject": s} for s in meta.get("keywords", [])]
    for dataset in record.datasets:
        for keyword in dataset.keywords:
            if {"subject": keyword} not in subjects:
                subjects.append({"subject": keyword})
    dates: list[dict[str, str]] = []
    if publication.registeredTime:
        dates.append({"date": publication.registeredTime.date().isoformat(), "dateType": "Issued"})
    collected = sorted(d.creationTime for d in record.datasets if d.creationTime)
    proposal = record.proposal
    if proposal is not None:
        collected = sorted([*collected, *(t for t in (proposal.startTime, proposal.endTime) if t)])
    if collected:
        first, last = collected[0].date().isoformat(), collected[-1].date().isoformat()
        dates.append(
            {"date": first if first == last else f"{first}/{last}", "dateType": "Collected"}
        )
    related: list[dict[str, str]] = [
        {
            "relatedIdentifier": url,
            "relatedIdentifierType": "URL",
            "relationType": "IsSupplementedBy",
        }
        for url in meta.get("relatedUrls", [])
    ]
    related += [dict(r) for r in meta.get("relatedIdentifiers", []) if r not in related]
    alternates = [
        {"alternateIdentifier": d.pid, "alternateIdentifierType": PID_IDENTIFIER_TYPE}
        for d in record.datasets
    ]
    if proposal is not None:
        proposal_id = {"alternateIdentifier": proposal.proposalId}
        alternates.insert(0, proposal_id | {"alternateIdentifierType": proposal.type})
    rights = []
    if meta.get("license"):
        rights.append(
            {"rights": meta.get("licenseName") or meta["license"], "rightsUri": meta["license"]}
        )
    attributes: dict[str, Any] = {
        "doi": publication.doi,
        "creators": list(meta.get("creators", [])),
        "titles": [{"title": publication.title, "lang": "en"}],
        "publisher": {"name": publisher},
        "publicationYear": int(meta.get("publicationYear") or 0),
        "types": types,
        "subjects": subjects,
        "contributors": list(meta.get("contributors", [])),
        "dates": dates,
        "language": meta.get("language", "en"),
        "alternateIdentifiers": alternates,
        "relatedIdentifiers": related,
        "sizes": [f"{total_size} bytes", f"{total_files} files"],
        "formats": list(meta.get("formats", [])),
        "rightsList": rights,
        "descriptions": [{"description": publication.abstract, "descriptionType": "Abstract"}],
        "geoLocations": list(meta.get("geoLocations", [])),
        "fundingReferences": list(meta.get("fundingReferences", [])),
        "schemaVersion": KERNEL_NS,
    }
    return attributes


def _sub(
    parent: etree._Element, tag: str, text: object = None, **attrs: str | None
) -> etree._Element:
    element = etree.SubElement(parent, f"{{{KERNEL_NS}}}{tag}")
    for key, value in attrs.items():
        if value is not None:
            element.set(XML_LANG if key == "lang" else key, str(value))
    if text is not None:
        element.text = str(text)
    return element


def _names(parent: etree._Element, tag: str, people: list[dict[str, Any]], role: str) -> None:
    container = _sub(parent, f"{role}s")
    for person in people:
        extra = (
            {"contributorType": person.get("contributorType", "Other")}
            if role == "contributor"
            else {}
        )
        node = _sub(container, role, **extra)
        _sub(node, f"{role}Name", person["name"], nameType=person.get("nameType"))
        if person.get("givenName"):
            _sub(node, "givenName", person["givenName"])
        if person.get("familyName"):
            _sub(node, "familyName", person["familyName"])
        for ident in person.get("nameIdentifiers", []):
            _sub(
                node,
                "nameIdentifier",
                ident["nameIdentifier"],
                nameIdentifierScheme=ident["nameIdentifierScheme"],
                schemeURI=ident.get("schemeUri"),
            )
        for affiliation in person.get("affiliation", []):
            _sub(
                node,
                "affiliation",
                affiliation["name"],
                affiliationIdentifier=affiliation.get("affiliationIdentifier"),
                affiliationIdentifierScheme=affiliation.get("affiliationIdentifierScheme"),
                schemeURI=affiliation.get("schemeUri"),
            )


def datacite_element(attributes: dict[str, Any]) -> etree._Element:
    """The kernel-4 `<resource>` element for DataCite REST attributes."""
    resource = etree.Element(f"{{{KERNEL_NS}}}resource", nsmap={None: KERNEL_NS, "xsi": XSI_NS})
    resource.set(f"{{{XSI_NS}}}schemaLocation", f"{KERNEL_NS} {KERNEL_SCHEMA_LOCATION}")
    _sub(resource, "identifier", attributes["doi"], identifierType="DOI")
    _names(resource, "creator", attributes["creators"], "creator")
    titles = _sub(resource, "titles")
    for title in attributes["titles"]:
        _sub(
            titles,
            "title",
            title["title"],
            lang=title.get("lang"),
            titleType=title.get("titleType"),
        )
    _sub(resource, "publisher", attributes["publisher"]["name"])
    _sub(resource, "publicationYear", f"{attributes['publicationYear']:04d}")
    types = attributes["types"]
    _sub(
        resource,
        "resourceType",
        types.get("resourceType"),
        resourceTypeGeneral=types["resourceTypeGeneral"],
    )
    if attributes.get("subjects"):
        subjects = _sub(resource, "subjects")
        for subject in attributes["subjects"]:
            _sub(
                subjects, "subject", subject["subject"], subjectScheme=subject.get("subjectScheme")
            )
    if attributes.get("contributors"):
        _names(resource, "contributor", attributes["contributors"], "contributor")
    if attributes.get("dates"):
        dates = _sub(resource, "dates")
        for date in attributes["dates"]:
            _sub(dates, "date", date["date"], dateType=date["dateType"])
    if attributes.get("language"):
        _sub(resource, "language", attributes["language"])
    if attributes.get("alternateIdentifiers"):
        alternates = _sub(resource, "alternateIdentifiers")
        for alt in attributes["alternateIdentifiers"]:
            _sub(
                alternates,
                "alternateIdentifier",
                alt["alternateIdentifier"],
                alternateIdentifierType=alt["alternateIdentifierType"],
            )
    if attributes.get("relatedIdentifiers"):
        relations = _sub(resource, "relatedIdentifiers")
        for rel in attributes["relatedIdentifiers"]:
            _sub(
                relations,
                "relatedIdentifier",
                rel["relatedIdentifier"],
                relatedIdentifierType=rel["relatedIdentifierType"],
                relationType=rel["relationType"],
                resourceTypeGeneral=rel.get("resourceTypeGeneral"),
            )
    if attributes.get("sizes"):
        sizes = _sub(resource, "sizes")
        for size in attributes["sizes"]:
            _sub(sizes, "size", size)
    if attributes.get("formats"):
        formats = _sub(resource, "formats")
        for fmt in attributes["formats"]:
            _sub(formats, "format", fmt)
    if attributes.get("rightsList"):
        rights_list = _sub(resource, "rightsList")
        for rights in attributes["rightsList"]:
            _sub(rights_list, "rights", rights.get("rights"), rightsURI=rights.get("rightsUri"))
    if attributes.get("descriptions"):
        descriptions = _sub(resource, "descriptions")
        for desc in attributes["descriptions"]:
            _sub(
                descriptions,
                "description",
                desc["description"],
                descriptionType=desc["descriptionType"],
            )
    if attributes.get("geoLocations"):
        locations = _sub(resource, "geoLocations")
        for location in attributes["geoLocations"]:
            _geo_location(_sub(locations, "geoLocation"), location)
    if attributes.get("fundingReferences"):
        funding = _sub(resource, "fundingReferences")
        for ref in attributes["fundingReferences"]:
            node = _sub(funding, "fundingReference")
            _sub(node, "funderName", ref["funderName"])
            if ref.get("funderIdentifier"):
                _sub(
                    node,
                    "funderIdentifier",
                    ref["funderIdentifier"],
                    funderIdentifierType=ref.get("funderIdentifierType", "Other"),
                )
            if ref.get("awardNumber"):
                _sub(node, "awardNumber", ref["awardNumber"])
            if ref.get("awardTitle"):
                _sub(node, "awardTitle", ref["awardTitle"])
    return resource


def _geo_location(node: etree._Element, location: dict[str, Any]) -> None:
    if location.get("geoLocationPlace"):
        _sub(node, "geoLocationPlace", location["geoLocationPlace"])
    if point := location.get("geoLocationPoint"):
        point_node = _sub(node, "geoLocationPoint")
        _sub(point_node, "pointLongitude", point["pointLongitude"])
        _sub(point_node, "pointLatitude", point["pointLatitude"])
    if box := location.get("geoLocationBox"):
        box_node = _sub(node, "geoLocationBox")
        for edge in (
            "westBoundLongitude",
            "eastBoundLongitude",
            "southBoundLatitude",
            "northBoundLatitude",
        ):
            _sub(box_node, edge, box[edge])


def datacite_xml(attributes: dict[str, Any]) -> bytes:
    """Kernel-4 XML document (UTF-8, with declaration)."""
    return to_bytes(datacite_element(attributes))


def oai_datacite_element(attributes: dict[str, Any], *, datacentre_symbol: str) -> etree._Element:
    """DataCite's OAI wrapper (oai-1.1) around the unaltered kernel-4 resource."""
    root = etree.Element(
        f"{{{OAI_DATACITE_NS}}}oai_datacite", nsmap={None: OAI_DATACITE_NS, "xsi": XSI_NS}
    )
    root.set(f"{{{XSI_NS}}}schemaLocation", f"{OAI_DATACITE_NS} {OAI_DATACITE_SCHEMA_LOCATION}")
    etree.SubElement(root, f"{{{OAI_DATACITE_NS}}}schemaVersion").text = "4"
    etree.SubElement(root, f"{{{OAI_DATACITE_NS}}}datacentreSymbol").text = datacentre_symbol
    payload = etree.SubElement(root, f"{{{OAI_DATACITE_NS}}}payload")
    payload.append(datacite_element(attributes))
    return root


def dublin_core_element(attributes: dict[str, Any]) -> etree._Element:
    """`oai_dc` derived from the DataCite attributes (DataCite's own crosswalk, simplified)."""
    root = etree.Element(
        f"{{{OAI_DC_NS}}}dc", nsmap={"oai_dc": OAI_DC_NS, "dc": DC_NS, "xsi": XSI_NS}
    )
    root.set(f"{{{XSI_NS}}}schemaLocation", f"{OAI_DC_NS} {OAI_DC_SCHEMA_LOCATION}")

    def dc(tag: str, text: object) -> None:
        if text not in (None, ""):
            etree.SubElement(root, f"{{{DC_NS}}}{tag}").text = str(text)

    for title in attributes["titles"]:
        dc("title", title["title"])
    for creator in attributes["creators"]:
        dc("creator", creator["name"])
    for subject in attributes.get("subjects", []):
        dc("subject", subject["subject"])
    for desc in attributes.get("descriptions", []):
        dc("description", desc["description"])
    dc("publisher", attributes["publisher"]["name"])
    for contributor in attributes.get("contributors", []):
        dc("contributor", contributor["name"])
    dc("date", f"{attributes['publicationYear']:04d}")
    for date in attributes.get("dates", []):
        if date["dateType"] == "Issued":
            dc("date", date["date"])
    types = attributes["types"]
    dc("type", types["resourceTypeGeneral"])
    if types.get("resourceType") and types["resourceType"] != types["resourceTypeGeneral"]:
        dc("type", types["resourceType"])
    for fmt in attributes.get("formats", []):
        dc("format", fmt)
    for size in attributes.get("sizes", []):
        dc("format", size)
    dc("identifier", f"https://doi.org/{attributes['doi']}")
    for alt in attributes.get("alternateIdentifiers", []):
        dc("identifier", alt["alternateIdentifier"])
    dc("language", attributes.get("language"))
    for rel in attributes.get("relatedIdentifiers", []):
        dc("relation", rel["relatedIdentifier"])
    for rights in attributes.get("rightsList", []):
        dc("rights", rights.get("rightsUri") or rights.get("rights"))
    for location in attributes.get("geoLocations", []):
        dc("coverage", location.get("geoLocationPlace"))
    return root


def to_bytes(element: etree._Element) -> bytes:
    """UTF-8 bytes with an XML declaration."""
    data: bytes = etree.tostring(element, xml_declaration=True, encoding="UTF-8")
    return data
