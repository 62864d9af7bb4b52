"""The pages a DOI resolves to: HTML for people, DataCite XML and JSON for machines.

All three come from one `datacite_metadata(record)` call, so they cannot disagree with each other
or with what DataCite holds. Only registered publications are shown: a DOI that DataCite has not
accepted does not resolve, so a page for it would be a page nobody should cite. A withdrawn DOI
still resolves (DOIs are permanent), to a tombstone with HTTP 410 Gone: it names what was
withdrawn, when and why, and offers no metadata downloads, so crawlers drop it.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from scicat_doi_minter.domain import datacite_metadata
from scicat_doi_minter.presentation import landing_view
from scicat_doi_minter.settings import Settings
from scicat_doi_minter.store import PublicationStore
from scicat_schemas.datacite import datacite_xml
from scicat_schemas.documents import PublicationRecord

JSON_API = "application/vnd.api+json"

_templates = Environment(
    loader=PackageLoader("scicat_doi_minter", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def landing_router(*, store: PublicationStore, settings: Settings) -> APIRouter:
    router = APIRouter(tags=["landing pages"])

    async def shown(doi: str) -> PublicationRecord | HTMLResponse:
        """The registered record, or the page to answer instead (404, or the 410 tombstone)."""
        record = await store.get_record(doi.strip().lower())
        if record is None:
            html = _templates.get_template("not_found.html").render(doi=doi)
            return HTMLResponse(html, status_code=404)
        if record.publication.status == "withdrawn":
            doi = record.publication.doi
            metadata = datacite_metadata(record, landing_page=settings.landing_page(doi))
            html = _templates.get_template("tombstone.html").render(
                view=landing_view(record, metadata)
            )
            return HTMLResponse(html, status_code=410)
        return record

    @router.get("/doi/{doi:path}/datacite.xml", summary="DataCite kernel-4 XML of a DOI.")
    async def doi_xml(doi: str) -> Response:
        record = await shown(doi)
        if isinstance(record, HTMLResponse):
            return record
        metadata = datacite_metadata(
            record, landing_page=settings.landing_page(record.publication.doi)
        )
        return Response(datacite_xml(metadata), media_type="application/xml")

    @router.get("/doi/{doi:path}/datacite.json", summary="DataCite JSON:API attributes of a DOI.")
    async def doi_json(doi: str) -> Response:
        record = await shown(doi)
        if isinstance(record, HTMLResponse):
            return record
        doi = record.publication.doi
        metadata = datacite_metadata(record, landing_page=settings.landing_page(doi))
        body = {"data": {"id": doi, "type": "dois", "attributes": metadata}}
        return Response(json.dumps(body, ensure_ascii=False, default=str), media_type=JSON_API)

    @router.get("/doi/{doi:path}", response_class=HTMLResponse, summary="Landing page of a DOI.")
    async def landing_page(doi: str) -> HTMLResponse:
        record = await shown(doi)
        if isinstance(record, HTMLResponse):
            return record
        doi = record.publication.doi
        metadata = datacite_metadata(record, landing_page=settings.landing_page(doi))
        html = _templates.get_template("landing.html").render(
            view=landing_view(record, metadata), base=settings.landing_page(doi)
        )
        return HTMLResponse(html)

    return router
