"""The one DataCite / Dublin Core mapping: complete, escaped, and XSD-valid for every fixture."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import etree

from scicat_pipeline.testing.xsd import assert_valid
from scicat_schemas.datacite import (
    DC_NS,
    KERNEL_NS,
    RESOURCE_TYPES_GENERAL,
    contributor_to_datacite,
    creator_to_datacite,
    datacite_attributes,
    datacite_element,
    datacite_xml,
    dublin_core_element,
    funding_to_datacite,
    geo_location_to_datacite,
    oai_datacite_element,
    related_to_datacite,
)
from scicat_schemas.documents import (
    DatasetSummary,
    ProposalSummary,
    PublicationRecord,
    PublishedData,
)


def _record(proposal: ProposalSummary | None = None, **metadata: object) -> PublicationRecord:
    meta: dict[str, object] = {
        "creators": [
            creator_to_datacite(
                name="Doe, Jane",
                given_name="Jane",
                family_name="Doe",
                orcid="0000-0002-1825-0097",
                affiliation="DESY",
                affiliation_ror="https://ror.org/01js2sh04",
            ),
            creator_to_datacite(name="P08 beamline team"),
        ],
        "publisher": "Deutsches Elektronen-Synchrotron DESY",
        "publicationYear": 2026,
        "resourceType": {"resourceTypeGeneral": "Dataset"},
        "keywords": ["X-ray diffraction"],
        "license": "https://creativecommons.org/licenses/by/4.0/",
    }
    meta.update(metadata)
    return PublicationRecord(
        publication=PublishedData(
            doi="10.5072/pub-1-abc123",
            publicationId="pub-1",
            title='Strain in LaB6 <films> & "friends"',
            abstract="We measured 3 scans at P08.",
            datasetPids=["local/11012345/scan_001", "local/11012345/scan_002"],
            status="registered",
            registeredTime=datetime(2026, 3, 2, tzinfo=UTC),
            metadata=meta,
        ),
        datasets=[
            DatasetSummary(
                pid="local/11012345/scan_001",
                datasetName="scan_001",
                size=1000,
                numberOfFiles=3,
                creationTime=datetime(2026, 3, 1, tzinfo=UTC),
                keywords=["scan"],
            ),
            DatasetSummary(
                pid="local/11012345/scan_002",
                datasetName="scan_002",
                size=24,
                numberOfFiles=1,
                creationTime=datetime(2026, 3, 2, tzinfo=UTC),
            ),
        ],
        proposal=proposal,
    )


BEAMTIME = ProposalSummary(
    proposalId="11012345",
    type="Beamtime",
    parentProposalId="I-20240123",
    title="Thin-film strain",
    startTime=datetime(2026, 2, 28, tzinfo=UTC),
    endTime=datetime(2026, 3, 3, tzinfo=UTC),
)

EVERY_ELEMENT = {
    "contributors": [
        contributor_to_datacite(
            contributor_type="DataCollector",
            name="Smith, Ann",
            given_name="Ann",
            family_name="Smith",
            orcid="0000-0001-5109-3700",
            affiliation="Lund University",
            affiliation_ror="https://ror.org/012a77v79",
        ),
        contributor_to_datacite(contributor_type="HostingInstitution", name="DESY"),
    ],
    "language": "de-DE",
    "formats": ["application/x-hdf5", "NeXus"],
    "geoLocations": [
        geo_location_to_datacite(place="PETRA III, DESY, Hamburg"),
        geo_location_to_datacite(latitude=53.5753, longitude=9.8797),
        geo_location_to_datacite(box=(9.87, 9.89, 53.57, 53.58), place="Bahrenfeld campus"),
    ],
    "fundingReferences": [
        funding_to_datacite(
            funder_name="Deutsche Forschungsgemeinschaft",
            funder_identifier="https://ror.org/018mejw64",
            funder_identifier_type="ROR",
            award_number="DFG-123",
            award_title="Strain at interfaces",
        ),
        funding_to_datacite(funder_name="A private foundation"),
    ],
    "relatedIdentifiers": [
        related_to_datacite(
            identifier="10.1103/PhysRevB.1.1",
            identifier_type="DOI",
            relation_type="IsSupplementTo",
            resource_type_general="JournalArticle",
        ),
        related_to_datacite(
            identifier="https://github.com/desy/reduction",
            identifier_type="URL",
            relation_type="IsDerivedFrom",
        ),
    ],
    "keywords": ["X-ray reflectivity", "thin films & <interfaces>"],
}


FIXTURES = {
    "full": _record(),
    "minimal": _record(keywords=[], license=None),
    "proposal-doi": _record(
        resourceType={"resourceTypeGeneral": "Other", "resourceType": "Proposal"}
    ),
    "funded": _record(
        fundingReferences=[
            {
                "funderName": "European Commission",
                "funderIdentifier": "https://doi.org/10.13039/501100000780",
                "funderIdentifierType": "Crossref Funder ID",
                "awardNumber": "101004728",
            }
        ],
        contributors=[
            {"name": "Smith, Ann", "nameType": "Personal", "contributorType": "DataCurator"}
        ],
    ),
    "every-element": _record(**EVERY_ELEMENT),
    "beamtime-doi": _record(
        proposal=BEAMTIME,
        resourceType={"resourceTypeGeneral": "Other", "resourceType": "Beamtime"},
        relatedIdentifiers=[
            related_to_datacite(
                identifier="10.5072/pub-2-def456",
                identifier_type="DOI",
                relation_type="HasPart",
                resource_type_general="Dataset",
            )
        ],
    ),
    "unicode": _record(
        creators=[creator_to_datacite(name="Åström, Łukasz", given_name="Łukasz")],
        keywords=["Röntgenbeugung", "回折"],
    ),
}


@pytest.mark.parametrize("name", FIXTURES)
@pytest.mark.parametrize("kernel", ["kernel-4", "kernel-4.6"])
def test_every_fixture_validates_against_the_kernel_xsd(name: str, kernel: str) -> None:
    attributes = datacite_attributes(FIXTURES[name])
    assert_valid(datacite_element(attributes), kernel=kernel)
    assert_valid(oai_datacite_element(attributes, datacentre_symbol="DESY.SCICAT"), kernel=kernel)
    assert_valid(dublin_core_element(attributes))


def test_attributes_carry_what_datacite_requires_for_findable() -> None:
    attributes = datacite_attributes(_record())
    assert attributes["doi"] == "10.5072/pub-1-abc123"
    assert attributes["publicationYear"] == 2026
    assert attributes["types"]["resourceTypeGeneral"] == "Dataset"
    assert attributes["publisher"] == {"name": "Deutsches Elektronen-Synchrotron DESY"}
    assert attributes["creators"][0]["nameIdentifiers"][0]["nameIdentifier"] == (
        "https://orcid.org/0000-0002-1825-0097"
    )
    assert attributes["creators"][0]["affiliation"][0]["affiliationIdentifierScheme"] == "ROR"
    assert "nameType" not in attributes["creators"][1]


def test_dataset_pids_become_alternate_identifiers_and_sizes_add_up() -> None:
    attributes = datacite_attributes(_record())
    assert [a["alternateIdentifier"] for a in attributes["alternateIdentifiers"]] == [
        "local/11012345/scan_001",
        "local/11012345/scan_002",
    ]
    assert attributes["sizes"] == ["1024 bytes", "4 files"]
    assert {"date": "2026-03-01/2026-03-02", "dateType": "Collected"} in attributes["dates"]


def test_resource_type_general_is_not_hard_coded() -> None:
    attributes = datacite_attributes(FIXTURES["proposal-doi"])
    resource = datacite_element(attributes)
    node = resource.find(f"{{{KERNEL_NS}}}resourceType")
    assert node is not None
    assert node.get("resourceTypeGeneral") == "Other"
    assert node.text == "Proposal"


def test_special_characters_are_escaped_not_interpolated() -> None:
    xml = datacite_xml(datacite_attributes(_record()))
    assert b"&lt;films&gt; &amp;" in xml
    parsed = etree.fromstring(xml)
    title = parsed.find(f"{{{KERNEL_NS}}}titles/{{{KERNEL_NS}}}title")
    assert title is not None
    assert title.text == 'Strain in LaB6 <films> & "friends"'


def test_dublin_core_is_derived_from_the_same_attributes() -> None:
    attributes = datacite_attributes(_record())
    dc = dublin_core_element(attributes)
    values = {(el.tag.split("}")[1], el.text) for el in dc}
    assert ("identifier", "https://doi.org/10.5072/pub-1-abc123") in values
    assert ("creator", "Doe, Jane") in values
    assert ("title", attributes["titles"][0]["title"]) in values
    assert ("type", "Dataset") in values
    assert ("rights", "https://creativecommons.org/licenses/by/4.0/") in values
    assert all(el.tag.startswith(f"{{{DC_NS}}}") for el in dc)


@pytest.mark.parametrize(
    ("metadata", "named"),
    [
        ({"publicationYear": None}, "publicationYear"),
        ({"creators": []}, "creators"),
        ({"creators": [{"nameType": "Personal"}]}, "creators[0].name"),
    ],
)
def test_a_record_missing_mandatory_metadata_is_refused_by_name(
    metadata: dict[str, object], named: str
) -> None:
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
        datacite_attributes(_record(**metadata))


def _xsd_values(kernel: str, vocabulary: str) -> set[str]:
    from scicat_pipeline.testing.xsd import shared_schemas_dir

    path = shared_schemas_dir() / "datacite" / kernel / "include" / f"datacite-{vocabulary}-v4.xsd"
    tree = etree.parse(str(path))
    return {str(v) for v in tree.xpath("//*[local-name()='enumeration']/@value")}


def test_resource_type_vocabulary_is_the_kernel_4_7_enumeration() -> None:
    assert _xsd_values("kernel-4", "resourceType") == RESOURCE_TYPES_GENERAL
    assert RESOURCE_TYPES_GENERAL - _xsd_values("kernel-4.6", "resourceType") == {
        "Poster",
        "Presentation",
    }


@pytest.mark.parametrize(
    ("literal", "vocabulary"),
    [
        ("ContributorType", "contributorType"),
        ("FunderIdentifierType", "funderIdentifierType"),
        ("RelatedIdentifierType", "relatedIdentifierType"),
        ("RelationType", "relationType"),
    ],
)
def test_every_vocabulary_is_the_kernel_4_7_enumeration(literal: str, vocabulary: str) -> None:
    from typing import get_args

    from scicat_schemas import datacite

    assert set(get_args(getattr(datacite, literal))) == _xsd_values("kernel-4", vocabulary)


def test_unknown_resource_type_general_is_refused_by_the_mapping() -> None:
    with pytest.raises(ValueError, match=r"'DataSet' is not in the DataCite 4\.7 vocabulary"):
        datacite_attributes(_record(resourceType={"resourceTypeGeneral": "DataSet"}))


def test_every_element_fixture_renders_each_kernel_element() -> None:
    resource = datacite_element(datacite_attributes(FIXTURES["every-element"]))
    present = {el.tag.split("}")[1] for el in resource}
    assert present >= {
        "identifier", "creators", "titles", "publisher", "publicationYear", "resourceType",
        "subjects", "contributors", "dates", "language", "alternateIdentifiers",
        "relatedIdentifiers", "sizes", "formats", "rightsList", "descriptions", "geoLocations",
        "fundingReferences",
    }  # fmt: skip
    ns = {"d": KERNEL_NS}
    assert resource.xpath("d:contributors/d:contributor/@contributorType", namespaces=ns) == [
        "DataCollector",
        "HostingInstitution",
    ]
    assert resource.xpath(
        "d:contributors/d:contributor/d:affiliation/@affiliationIdentifier", namespaces=ns
    ) == ["https://ror.org/012a77v79"]
    assert resource.xpath(
        "d:geoLocations/d:geoLocation/d:geoLocationPoint/d:pointLatitude/text()", namespaces=ns
    ) == ["53.5753"]
    assert resource.xpath(
        "d:fundingReferences/d:fundingReference/d:awardTitle/text()", namespaces=ns
    ) == ["Strain at interfaces"]
    assert resource.xpath("d:language/text()", namespaces=ns) == ["de-DE"]


def test_proposal_record_names_the_proposal_and_its_time() -> None:
    attributes = datacite_attributes(FIXTURES["beamtime-doi"])
    assert attributes["alternateIdentifiers"][0] == {
        "alternateIdentifier": "11012345",
        "alternateIdentifierType": "Beamtime",
    }
    assert {"date": "2026-02-28/2026-03-03", "dateType": "Collected"} in attributes["dates"]
    assert attributes["relatedIdentifiers"][0]["relationType"] == "HasPart"
