"""Landing pages of registered DOIs: HTML for people, DataCite XML and JSON for machines."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from scicat_doi_minter import domain
from scicat_doi_minter.landing import landing_router
from scicat_doi_minter.settings import Settings
from scicat_doi_minter.store import MongoPublicationStore
from scicat_pipeline.testing.xsd import assert_valid
from scicat_schemas.documents import Dataset
from scicat_schemas.events import PublicationRequested

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(minter_settings: Settings) -> AsyncIterator[MongoPublicationStore]:
    store = MongoPublicationStore(minter_settings.mongo)
    async with store.opened():
        yield store


@pytest.fixture
async def client(
    store: MongoPublicationStore, minter_settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(landing_router(store=store, settings=minter_settings))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        yield client


async def save(
    store: MongoPublicationStore,
    request: PublicationRequested,
    datasets: list[Dataset],
    *,
    registered: bool,
) -> str:
    doi: str = domain.doi_for("10.5072", request.data.publication_id)
    pending = domain.pending_publication(
        request.data,
        doi=doi,
        datasets=datasets,
        landing_page=f"https://doi.example.org/doi/{doi}",
        default_publisher="DESY",
        existing=None,
        now=NOW,
    )
    summaries = [domain.dataset_summary(d) for d in datasets]
    await store.save_pending(pending, summaries)
    if registered:
        record = domain.registered_record(pending, summaries, existing=None, now=NOW)
        await store.save_registered(record.publication, summaries)
    return doi


@pytest.fixture
async def registered_doi(
    store: MongoPublicationStore,
    make_request: Callable[..., PublicationRequested],
    make_dataset: Callable[..., Dataset],
) -> str:
    datasets = [make_dataset("desy/p08/run-7"), make_dataset("desy/p08/run-8", numberOfFiles=3)]
    request = make_request("pub-1", "desy/p08/run-7", "desy/p08/run-8")
    return await save(store, request, datasets, registered=True)


def json_ld(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/ld\+json">(.*?)</script>', html, re.S)
    assert match, "no JSON-LD script in the page"
    return json.loads(match.group(1))  # type: ignore[no-any-return]


async def test_landing_page_shows_title_creators_datasets_and_citation(
    client: httpx.AsyncClient, registered_doi: str
) -> None:
    response = await client.get(f"/doi/{registered_doi}")

    assert response.status_code == 200
    html = response.text
    assert "<h1>Strain relaxation in &lt;Ni&gt; &amp; Fe thin films</h1>" in html
    assert '<a class="orcid" href="https://orcid.org/0000-0002-1825-0097"' in html
    assert "X-ray reflectivity of epitaxial films" in html
    assert "Published 2025 by DESY" in html
    assert "run-8" in html and "1.5 GB" in html and '<td class="number">3</td>' in html
    assert "3.0 GB" in html  # the total
    assert (
        "Doe, Jane; Roe, Richard (2025). Strain relaxation in &lt;Ni&gt; &amp; Fe thin films. "
        f"DESY. https://doi.org/{registered_doi}"
    ) in html
    assert f'href="https://doi.example.org/doi/{registered_doi}/datacite.xml"' in html
    assert f'href="https://doi.example.org/doi/{registered_doi}/datacite.json"' in html


async def test_landing_page_embeds_schema_org_dataset_json_ld(
    client: httpx.AsyncClient, registered_doi: str
) -> None:
    document = json_ld((await client.get(f"/doi/{registered_doi}")).text)

    assert document["@type"] == "Dataset"
    assert document["name"] == "Strain relaxation in <Ni> & Fe thin films"
    assert document["identifier"] == f"https://doi.org/{registered_doi}"
    assert document["creator"][0]["@id"] == "https://orcid.org/0000-0002-1825-0097"
    assert document["publisher"]["name"] == "DESY"
    assert [d["contentSize"] for d in document["distribution"]] == ["1.5 GB", "1.5 GB"]


async def test_datacite_xml_and_json_describe_the_same_doi(
    client: httpx.AsyncClient, registered_doi: str
) -> None:
    xml = await client.get(f"/doi/{registered_doi}/datacite.xml")
    as_json = await client.get(f"/doi/{registered_doi}/datacite.json")

    assert xml.headers["content-type"].startswith("application/xml")
    resource = assert_valid(xml.content)
    ns = {"d": "http://datacite.org/schema/kernel-4"}
    attributes = as_json.json()["data"]["attributes"]
    assert resource.findtext("d:identifier", namespaces=ns) == attributes["doi"] == registered_doi
    assert resource.findtext("d:titles/d:title", namespaces=ns) == attributes["titles"][0]["title"]
    assert attributes["url"] == f"https://doi.example.org/doi/{registered_doi}"


async def test_doi_lookup_ignores_case(client: httpx.AsyncClient, registered_doi: str) -> None:
    assert (await client.get(f"/doi/{registered_doi.upper()}")).status_code == 200


async def test_unknown_doi_gets_a_404_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/doi/10.5072/nope")
    assert response.status_code == 404
    assert "DOI not found" in response.text
    assert (await client.get("/doi/10.5072/nope/datacite.xml")).status_code == 404


async def test_publication_not_yet_registered_is_not_shown(
    client: httpx.AsyncClient,
    store: MongoPublicationStore,
    make_request: Callable[..., PublicationRequested],
    make_dataset: Callable[..., Dataset],
) -> None:
    doi = await save(store, make_request("pub-2", "d"), [make_dataset("d")], registered=False)
    assert (await client.get(f"/doi/{doi}")).status_code == 404
    assert (await client.get(f"/doi/{doi}/datacite.json")).status_code == 404


async def test_citation_styles_are_rendered_from_the_same_metadata_and_escaped(
    client: httpx.AsyncClient, registered_doi: str
) -> None:
    page = (await client.get(f"/doi/{registered_doi}")).text

    apa = re.search(r'<dd class="citation-apa">(.*?)</dd>', page, re.S)
    assert apa is not None
    assert apa.group(1).startswith("Doe, J., &amp; Roe, R. (2025). Strain relaxation in &lt;Ni&gt;")
    assert f"https://doi.org/{registered_doi}" in apa.group(1)
    for label in ("APA", "Harvard", "MLA", "Chicago", "IEEE"):
        assert f"<dt>{label}</dt>" in page
    assert "<Ni>" not in page  # the title never reaches the page unescaped


async def test_withdrawn_doi_resolves_to_a_tombstone_with_410(
    client: httpx.AsyncClient, store: MongoPublicationStore, registered_doi: str
) -> None:
    published = await store.get_published(registered_doi)
    assert published is not None
    withdrawn = published.model_copy(
        update={"status": "withdrawn", "withdrawnTime": NOW, "withdrawalReason": "wrong sample"}
    )
    await store.save_withdrawn(withdrawn)

    page = await client.get(f"/doi/{registered_doi}")
    xml = await client.get(f"/doi/{registered_doi}/datacite.xml")

    assert page.status_code == 410
    assert "This publication was withdrawn on 2025-06-01" in page.text
    assert "Reason: wrong sample" in page.text
    assert "Strain relaxation in &lt;Ni&gt; &amp; Fe thin films" in page.text
    assert '<meta name="robots" content="noindex">' in page.text
    assert "application/ld+json" not in page.text
    assert "datacite.xml" not in page.text
    assert xml.status_code == 410
