"""The dataset search API: free text, metadata conditions with units, filters, facets, paging.

`GET /datasets` takes the search as query parameters (conditions as `condition=energy>5keV`);
`POST /datasets/search` takes the same search as JSON (`SearchRequest`). Both answer
`{"total", "items", "facets", "next"}`. Every query carries the caller's visibility inside the
OpenSearch query (`query.visibility_filter`), so totals and facet counts never count a dataset the
caller may not see.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from pydantic import BaseModel, Field, ValidationError

from scicat_indexer.auth import CurrentPrincipal, Principal
from scicat_indexer.conditions import (
    QueryError,
    check_units,
    parse_condition,
    stored_units_body,
)
from scicat_indexer.query import (
    FacetName,
    SearchRequest,
    encode_cursor,
    facet_counts,
    membership_filter,
    search_body,
    unit_conditions,
    visibility_filter,
)
from scicat_indexer.redaction import redact_dataset, redact_facets
from scicat_indexer.store import DatasetIndex

router = APIRouter(tags=["datasets"])


class Bucket(BaseModel):
    value: str | int | float = Field(description="Facet value (ISO date for the histogram).")
    count: int = Field(description="Visible matching datasets with this value.")


class DatasetPage(BaseModel):
    total: int = Field(description="Number of matching datasets, not just those in `items`.")
    items: list[dict[str, Any]] = Field(description="Datasets as stored (SciCat v4 field names).")
    facets: dict[str, list[Bucket]] = Field(
        default_factory=dict, description="Counts per requested facet, over all matches."
    )
    next: str | None = Field(
        default=None,
        description="Cursor for the next page (`search_after`); null on the last page.",
    )


class Problem(BaseModel):
    detail: str = Field(description="What went wrong.")


def _dataset_index(request: Request) -> DatasetIndex:
    index: DatasetIndex = request.app.state.dataset_index
    return index


Index = Annotated[DatasetIndex, Depends(_dataset_index)]

BAD_SEARCH: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Unknown or incompatible unit, bad cursor."}
}


async def run_search(index: DatasetIndex, request: SearchRequest, principal: Principal) -> Any:
    visible = visibility_filter(principal)
    try:
        page = await index.search(search_body(request, visible, membership_filter(principal)))
        with_units = unit_conditions(request)
        if page.total == 0 and with_units:
            # A unit of another dimension matches nothing: say why instead of an empty page.
            # Only asked when nothing matched, so a good query costs one request, not two.
            units = await index.search(stored_units_body(with_units, visible))
            check_units(with_units, units.aggregations)
    except QueryError as error:
        raise HTTPException(status_code=400, detail=str(error)) from error
    next_cursor = None
    if len(page.items) == request.limit and page.sort_values:
        next_cursor = encode_cursor(page.sort_values[-1], request.sort)
    return DatasetPage(
        total=page.total,
        items=[redact_dataset(item, principal.groups) for item in page.items],
        facets=redact_facets(facet_counts(page.aggregations)),  # type: ignore[arg-type]
        next=next_cursor,
    )


@router.get(
    "/datasets",
    summary="Search datasets (query parameters).",
    responses=BAD_SEARCH,
    openapi_extra={
        "x-examples": [
            "/datasets?text=LaB6",
            "/datasets?condition=energy>5keV&condition=sample.name~lab",
            "/datasets?instrument=P08&facet=instrument&facet=creationTime",
        ]
    },
)
async def search_datasets(
    index: Index,
    principal: CurrentPrincipal,
    text: Annotated[
        str | None,
        Query(max_length=1000, description=SearchRequest.model_fields["text"].description),
    ] = None,
    condition: Annotated[
        list[str],
        Query(
            description="`key<op>value[unit]`, op one of `= > >= < <=`; `key=low..high unit` "
            "(range); `key~text` (contains); `key` alone (exists). Repeat for AND.",
            examples=["energy>5keV"],
        ),
    ] = [],  # noqa: B006 - FastAPI copies defaults
    instrument: Annotated[list[str], Query(description="Instrument ids (OR).")] = [],  # noqa: B006
    beamtime: Annotated[list[str], Query(description="Beamtime ids (OR).")] = [],  # noqa: B006
    proposal: Annotated[list[str], Query(description="Proposal ids (OR).")] = [],  # noqa: B006
    pi: Annotated[list[str], Query(description="Principal investigators (OR).")] = [],  # noqa: B006
    technique: Annotated[list[str], Query(description="Technique names (OR).")] = [],  # noqa: B006
    type: Annotated[list[str], Query(description="`raw`, `derived` (OR).")] = [],  # noqa: B006
    created_from: Annotated[datetime | None, Query(description="creationTime ≥, ISO 8601.")] = None,
    created_to: Annotated[datetime | None, Query(description="creationTime <, ISO 8601.")] = None,
    facet: Annotated[list[FacetName], Query(description="Facets to count.")] = [],  # noqa: B006
    histogram_interval: Annotated[
        str, Query(description="day, week, month, quarter or year.")
    ] = "month",
    sort: Annotated[
        list[str], Query(description=SearchRequest.model_fields["sort"].description)
    ] = ["creationTime:desc"],  # noqa: B006
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 20,
    skip: Annotated[int, Query(ge=0, description="Datasets to skip (shallow paging).")] = 0,
    search_after: Annotated[
        str | None, Query(max_length=4096, description="Cursor `next` of the previous page.")
    ] = None,
) -> DatasetPage:
    filters = {
        "instrument": instrument,
        "beamtime": beamtime,
        "proposal": proposal,
        "pi": pi,
        "technique": technique,
        "type": type,
    }
    try:
        request = SearchRequest(
            text=text,
            conditions=[parse_condition(c) for c in condition],
            filters={k: v for k, v in filters.items() if v},  # type: ignore[misc]
            created_from=created_from,
            created_to=created_to,
            facets=facet,
            histogram_interval=histogram_interval,  # type: ignore[arg-type]
            sort=sort,
            limit=limit,
            skip=skip,
            search_after=search_after,
        )
    except QueryError as error:
        raise HTTPException(status_code=400, detail=str(error)) from error
    except ValidationError as error:
        problems = [
            {"loc": ["query", *map(str, e["loc"])], "msg": e["msg"], "type": e["type"]}
            for e in error.errors(include_url=False)
        ]
        raise HTTPException(status_code=422, detail=problems) from error
    page: DatasetPage = await run_search(index, request, principal)
    return page


@router.post("/datasets/search", summary="Search datasets (JSON body).", responses=BAD_SEARCH)
async def search_datasets_json(
    index: Index, principal: CurrentPrincipal, request: Annotated[SearchRequest, Body()]
) -> DatasetPage:
    page: DatasetPage = await run_search(index, request, principal)
    return page


@router.get(
    "/datasets/{pid:path}",
    summary="One dataset by pid (pids contain slashes).",
    responses={404: {"model": Problem, "description": "No dataset with this pid is visible."}},
)
async def get_dataset(pid: str, index: Index, principal: CurrentPrincipal) -> dict[str, Any]:
    body = {
        "query": {"bool": {"filter": [{"ids": {"values": [pid]}}, visibility_filter(principal)]}},
        "size": 1,
    }
    page = await index.search(body) if pid else None
    if page is None or not page.items:
        raise HTTPException(status_code=404, detail=f"no dataset with pid {pid!r}")
    return redact_dataset(page.items[0], principal.groups)


async def index_failure(request: Request, error: Exception) -> JSONResponse:
    """OpenSearch down, overloaded or failing → 503, so callers retry; anything else is our bug."""
    status = getattr(error, "status_code", None)
    retryable = isinstance(error, OpenSearchConnectionError) or (
        isinstance(status, int) and (status == 429 or status >= 500)
    )
    if retryable:
        return JSONResponse(
            status_code=503,
            content={"detail": f"the dataset index is unavailable, try again later: {error}"[:500]},
        )
    return JSONResponse(
        status_code=500, content={"detail": f"the dataset index refused the query: {error}"[:500]}
    )
