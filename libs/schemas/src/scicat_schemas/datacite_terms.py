"""DataCite's controlled vocabularies (kernel 4.7) and the REST shapes of its compound properties.

Kept apart from the mapping because they change for another reason: a new kernel version. The
vocabularies are `Literal`s, so event payloads refuse a misspelt value at the producer instead of
DataCite refusing the DOI later; a test compares each with the kernel XSD's enumeration.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

ORCID_SCHEME_URI = "https://orcid.org"
ROR_SCHEME_URI = "https://ror.org"
PID_IDENTIFIER_TYPE = "SciCat PID"

ResourceTypeGeneral = Literal[
    "Audiovisual", "Award", "Book", "BookChapter", "Collection", "ComputationalNotebook",
    "ConferencePaper", "ConferenceProceeding", "DataPaper", "Dataset", "Dissertation", "Event",
    "Image", "Instrument", "InteractiveResource", "Journal", "JournalArticle", "Model",
    "OutputManagementPlan", "PeerReview", "PhysicalObject", "Poster", "Preprint", "Presentation",
    "Project", "Report", "Service", "Software", "Sound", "Standard", "StudyRegistration", "Text",
    "Workflow", "Other",
]  # fmt: skip
"""DataCite kernel 4.7 `resourceTypeGeneral` (4.6 lacks `Poster` and `Presentation`)."""

ContributorType = Literal[
    "ContactPerson", "DataCollector", "DataCurator", "DataManager", "Distributor", "Editor",
    "HostingInstitution", "Other", "Producer", "ProjectLeader", "ProjectManager", "ProjectMember",
    "RegistrationAgency", "RegistrationAuthority", "RelatedPerson", "ResearchGroup",
    "RightsHolder", "Researcher", "Sponsor", "Supervisor", "Translator", "WorkPackageLeader",
]  # fmt: skip

FunderIdentifierType = Literal["ISNI", "GRID", "ROR", "Crossref Funder ID", "Other"]

RelatedIdentifierType = Literal[
    "ARK", "arXiv", "bibcode", "CSTR", "DOI", "EAN13", "EISSN", "Handle", "IGSN", "ISBN", "ISSN",
    "ISTC", "LISSN", "LSID", "PMID", "PURL", "RAiD", "RRID", "SWHID", "UPC", "URL", "URN", "w3id",
]  # fmt: skip
"""Kernel 4.7; `RAiD` and `SWHID` are new in 4.7."""

RelationType = Literal[
    "IsCitedBy", "Cites", "IsSupplementTo", "IsSupplementedBy", "IsContinuedBy", "Continues",
    "IsNewVersionOf", "IsPreviousVersionOf", "IsPartOf", "HasPart", "IsPublishedIn",
    "IsReferencedBy", "References", "IsDocumentedBy", "Documents", "IsCompiledBy", "Compiles",
    "IsVariantFormOf", "IsOriginalFormOf", "IsIdenticalTo", "HasMetadata", "IsMetadataFor",
    "Reviews", "IsReviewedBy", "IsDerivedFrom", "IsSourceOf", "Describes", "IsDescribedBy",
    "HasVersion", "IsVersionOf", "Requires", "IsRequiredBy", "Obsoletes", "IsObsoletedBy",
    "Collects", "IsCollectedBy", "HasTranslation", "IsTranslationOf", "Other",
]  # fmt: skip
"""Kernel 4.7; `Other` is new in 4.7."""

RESOURCE_TYPES_GENERAL: frozenset[str] = frozenset(get_args(ResourceTypeGeneral))


def creator_to_datacite(
    *,
    name: str,
    given_name: str | None = None,
    family_name: str | None = None,
    orcid: str | None = None,
    affiliation: str | None = None,
    affiliation_ror: str | None = None,
) -> dict[str, Any]:
    """A DataCite creator; an ORCID makes it a person and becomes a name identifier."""
    creator: dict[str, Any] = {"name": name}
    if orcid or given_name or family_name or "," in name:
        creator["nameType"] = "Personal"
    if given_name:
        creator["givenName"] = given_name
    if family_name:
        creator["familyName"] = family_name
    if orcid:
        creator["nameIdentifiers"] = [
            {
                "nameIdentifier": f"https://orcid.org/{orcid}",
                "nameIdentifierScheme": "ORCID",
                "schemeUri": ORCID_SCHEME_URI,
            }
        ]
    if affiliation:
        entry: dict[str, Any] = {"name": affiliation}
        if affiliation_ror:
            entry |= {
                "affiliationIdentifier": affiliation_ror,
                "affiliationIdentifierScheme": "ROR",
                "schemeUri": ROR_SCHEME_URI,
            }
        creator["affiliation"] = [entry]
    return creator


def contributor_to_datacite(*, contributor_type: str = "Other", **person: Any) -> dict[str, Any]:
    """A DataCite contributor: a creator's shape plus its `contributorType`."""
    return {**creator_to_datacite(**person), "contributorType": contributor_type}


def funding_to_datacite(
    *,
    funder_name: str,
    funder_identifier: str | None = None,
    funder_identifier_type: str = "Other",
    award_number: str | None = None,
    award_title: str | None = None,
) -> dict[str, Any]:
    reference: dict[str, Any] = {"funderName": funder_name}
    if funder_identifier:
        reference |= {
            "funderIdentifier": funder_identifier,
            "funderIdentifierType": funder_identifier_type,
        }
    if award_number:
        reference["awardNumber"] = award_number
    if award_title:
        reference["awardTitle"] = award_title
    return reference


def geo_location_to_datacite(
    *,
    place: str | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
    box: tuple[float, float, float, float] | list[float] | None = None,
) -> dict[str, Any]:
    """DataCite REST shape; coordinates as numbers, the box as [west, east, south, north]."""
    location: dict[str, Any] = {}
    if place:
        location["geoLocationPlace"] = place
    if latitude is not None and longitude is not None:
        location["geoLocationPoint"] = {"pointLatitude": latitude, "pointLongitude": longitude}
    if box is not None:
        west, east, south, north = box
        location["geoLocationBox"] = {
            "westBoundLongitude": west,
            "eastBoundLongitude": east,
            "southBoundLatitude": south,
            "northBoundLatitude": north,
        }
    return location


def related_to_datacite(
    *,
    identifier: str,
    identifier_type: str,
    relation_type: str,
    resource_type_general: str | None = None,
) -> dict[str, Any]:
    related = {
        "relatedIdentifier": identifier,
        "relatedIdentifierType": identifier_type,
        "relationType": relation_type,
    }
    if resource_type_general:
        related["resourceTypeGeneral"] = resource_type_general
    return related
