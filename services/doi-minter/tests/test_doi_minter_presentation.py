"""What a landing page says: sizes, the citation line, schema.org JSON-LD."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from scicat_doi_minter import domain, presentation
from scicat_schemas.documents import Dataset, PublicationRecord
from scicat_schemas.events import PublicationRequested

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def record_and_metadata(
    request: PublicationRequested, datasets: list[Dataset]
) -> tuple[PublicationRecord, dict[str, object]]:
    doi = domain.doi_for("10.5072", request.data.publication_id)
    published = domain.pending_publication(
        request.data,
        doi=doi,
        datasets=datasets,
        landing_page=f"https://doi.example.org/doi/{doi}",
        default_publisher="DESY",
        existing=None,
        now=NOW,
    )
    summaries = [domain.dataset_summary(d) for d in datasets]
    record = domain.registered_record(published, summaries, existing=None, now=NOW)
    metadata = domain.datacite_metadata(record, landing_page=f"https://doi.example.org/doi/{doi}")
    return record, metadata


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 bytes"),
        (999, "999 bytes"),
        (1000, "1.0 kB"),
        (1_500_000_000, "1.5 GB"),
        (999_960, "1.0 MB"),
        (3 * 10**21, "3000.0 EB"),
    ],
)
def test_sizes_read_in_decimal_units(size: int, text: str) -> None:
    assert presentation.human_size(size) == text


def test_citation_follows_datacite_style(
    make_request: Callable[..., PublicationRequested], make_dataset: Callable[..., Dataset]
) -> None:
    record, metadata = record_and_metadata(make_request("pub", "d"), [make_dataset("d")])
    assert presentation.citation(metadata) == (
        "Doe, Jane; Roe, Richard (2025). Strain relaxation in <Ni> & Fe thin films. DESY. "
        f"https://doi.org/{record.publication.doi}"
    )


def test_json_ld_is_a_schema_org_dataset_with_orcid_creators(
    make_request: Callable[..., PublicationRequested], make_dataset: Callable[..., Dataset]
) -> None:
    record, metadata = record_and_metadata(make_request("pub", "d"), [make_dataset("d")])
    document = presentation.schema_org(record, metadata)

    assert document["@type"] == "Dataset"
    assert document["identifier"] == f"https://doi.org/{record.publication.doi}"
    jane, richard = document["creator"]
    assert jane == {
        "@type": "Person",
        "@id": "https://orcid.org/0000-0002-1825-0097",
        "name": "Doe, Jane",
        "givenName": "Jane",
        "familyName": "Doe",
        "affiliation": [{"@type": "Organization", "name": "Deutsches Elektronen-Synchrotron DESY"}],
    }
    assert "@id" not in richard
    assert document["datePublished"] == "2025-06-01"
    assert document["publisher"] == {"@type": "Organization", "name": "DESY"}
    assert document["license"] == "https://creativecommons.org/licenses/by/4.0/"
    assert document["distribution"][0]["contentSize"] == "1.5 GB"


def test_json_ld_cannot_close_its_script_element() -> None:
    text = presentation.script_json({"name": "</script><script>alert(1)</script> & more"})
    assert "</script>" not in text and "<" not in text and "&" not in text
    assert json.loads(text)["name"] == "</script><script>alert(1)</script> & more"


def test_citation_styles_name_people_by_family_name_and_organisations_literally() -> None:
    from scicat_doi_minter.citations import citations, csl_item

    attributes = {
        "doi": "10.5072/x-1",
        "titles": [{"title": "Powder diffraction of LaB6"}],
        "creators": [
            {"name": "Doe, Jane", "nameType": "Personal"},
            {"name": "P08 beamline team"},
        ],
        "publicationYear": 2026,
        "publisher": {"name": "DESY"},
        "types": {"resourceTypeGeneral": "Dataset", "resourceType": "Dataset"},
    }
    assert csl_item(attributes)["author"] == [
        {"family": "Doe", "given": "Jane"},
        {"literal": "P08 beamline team"},
    ]
    styled = {c.label: c.text for c in citations(attributes)}
    assert styled["APA"] == (
        "Doe, J., & P08 beamline team. (2026). Powder diffraction of LaB6 [Dataset]. DESY. "
        "https://doi.org/10.5072/x-1"
    )
    assert styled["IEEE"].startswith("J. Doe and P08 beamline team")


@pytest.mark.parametrize(
    ("general", "schema_type"),
    [("Dataset", "Dataset"), ("Project", "ResearchProject"), ("Other", "CreativeWork")],
)
def test_json_ld_claims_dataset_only_for_datasets(
    general: str,
    schema_type: str,
    make_request: Callable[..., PublicationRequested],
    make_dataset: Callable[..., Dataset],
) -> None:
    request = make_request("pub", "d/1", resource_type_general=general)
    record, metadata = record_and_metadata(request, [make_dataset("d/1")])
    assert presentation.schema_org(record, metadata)["@type"] == schema_type
