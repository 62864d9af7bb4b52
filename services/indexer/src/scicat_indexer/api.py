"""The dataset search API: substring search and lookup by pid.

Internal for now: it answers every caller with every dataset, whatever its `ownerGroup` and
`accessGroups`. Access control (filtering on the caller's groups, public view of published
datasets) comes in a later issue; until then, do not expose this API outside the facility network.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from pydantic import BaseModel, Field

from scicat_indexer.domain import search_body
from scicat_indexer.store import DatasetIndex

MAX_RESULT_WINDOW: Final = 10_000
"""OpenSearch's default `index.max_result_window`: `skip + limit` beyond it is refused."""

router = APIRouter(tags=["datasets"])


class DatasetPage(BaseModel):
    total: int = Field(description="Number of matching datasets, not just those in `items`.")
    items: list[dict[str, Any]] = Field(
        description="Datasets as stored (SciCat v4 field names), newest `creationTime` first."
    )


class Problem(BaseModel):
    detail: str = Field(description="What went wrong.")


def _dataset_index(request: Request) -> DatasetIndex:
    index: DatasetIndex = request.app.state.dataset_index
    return index


Index = Annotated[DatasetIndex, Depends(_dataset_index)]


@router.get("/datasets", summary="Search datasets by substring.")
async def search_datasets(
    index: Index,
    text: Annotated[
        str | None,
        Query(
            max_length=1000,
            description="Substring of the name, description, source folder or a keyword, "
            "in any case; omit it to list all datasets.",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 20,
    skip: Annotated[int, Query(ge=0, description="Datasets to skip (paging).")] = 0,
) -> DatasetPage:
    if skip + limit > MAX_RESULT_WINDOW:
        raise HTTPException(
            status_code=422,
            detail=[
                {
                    "loc": ["query", "skip"],
                    "msg": f"skip + limit must be at most {MAX_RESULT_WINDOW}; "
                    "narrow the search with `text` instead of paging this deep",
                    "type": "value_error",
                    "input": skip,
                }
            ],
        )
    page = await index.search(search_body(text=text, limit=limit, skip=skip))
    return DatasetPage(total=page.total, items=page.items)


@router.get(
    "/datasets/{pid:path}",
    summary="One dataset by pid (pids contain slashes).",
    responses={404: {"model": Problem, "description": "No dataset has this pid."}},
)
async def get_dataset(pid: str, index: Index) -> dict[str, Any]:
    dataset = await index.get(pid) if pid else None
    if dataset is None:
        raise HTTPException(status_code=404, detail=f"no dataset with pid {pid!r}")
    return dataset


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
