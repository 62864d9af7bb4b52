"""The one DataCite / Dublin Core mapping: complete, escaped, and XSD-valid for every fixture."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import etree

from scicat_pipeline.testing.xsd import assert_valid
from scicat_schemas.datacite import (
    DC_NS,
    KERNEL_NS,
    creator_to_datacite,
    datacite_attributes,
    datacite_element,
    datacite_xml,
    dublin_core_element,
    oai_datacite_element,
)
from scicat_schemas.documents import DatasetSummary, PublicationRecord, PublishedData


def _record(**metadata: object) -> PublicationRecord:
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
    )


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
