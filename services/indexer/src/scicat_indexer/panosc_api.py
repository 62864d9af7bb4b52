"""PaNOSC search API routes: `/panosc/Datasets`, `/panosc/Documents`, `/panosc/Instruments`.

Public by design: every query is restricted to published datasets inside the OpenSearch query, and
Documents and Instruments are derived from published datasets only (a proposal or an instrument
with nothing published is not listed). Documents are the SciCat Proposals (read from MongoDB) of
published datasets.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final

from fastapi import APIRouter, HTTPException, Query, Request

from scicat_indexer.api import Index, Problem
from scicat_indexer.conditions import Condition, QueryError
from scicat_indexer.panosc import (
    DATASET_FIELDS,
    DATASET_RELATIONS,
    facility_of,
    includes,
    matches,
    page_of,
    panosc_dataset,
    parameter_clauses,
    parameter_conditions,
    where_clauses,
)
from scicat_indexer.query import published_only
from scicat_indexer.store import DatasetIndex

router = APIRouter(prefix="/panosc", tags=["panosc"])

MAX_FILTER_CHARS: Final = 1024
"""Longest `filter`/`where`: percent-encoded, it must fit the HTTP server's 16 KiB request line."""

MAX_BUCKETS: Final = 10_000
"""Proposals / instruments listed at most (terms aggregation size)."""

FILTER_EXAMPLE: Final = json.dumps(
    {
        "where": {"title": {"ilike": "%film%"}},
        "include": [
            {
                "relation": "parameters",
                "scope": {
                    "where": {
                        "and": [
                            {"name": "energy"},
                            {"value": {"between": [5, 20]}},
                            {"unit": "keV"},
                        ]
                    }
                },
            },
            {"relation": "instrument"},
        ],
        "limit": 10,
    }
)

FilterParam = Annotated[
    str | None,
    Query(
        alias="filter",
        max_length=MAX_FILTER_CHARS,
        description="LoopBack filter JSON: `where`, `include` (with `scope.where` on "
        "`parameters`: `name`, `value` {gt, gte, lt, lte, between} or a number, `unit`), "
        "`limit`, `skip`.",
        examples=[FILTER_EXAMPLE],
    ),
]
BAD_FILTER: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Filter not understood or unit unknown."}
}


def _parse(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as error:
        raise HTTPException(status_code=400, detail=f"filter is not JSON: {error}") from error
    if not isinstance(value, dict):
        raise HTTPException(status_code=400, detail="filter must be a JSON object")
    return value


def _dataset_query(
    filter_: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], list[Condition]]:
    relations = includes(filter_, DATASET_RELATIONS)
    where = filter_.get("where") or {}
    if not isinstance(where, dict):
        raise QueryError("where must be an object")
    clauses = [published_only(), *where_clauses(where, DATASET_FIELDS)]
    conditions = parameter_conditions(relations.get("parameters", {}))
    clauses += parameter_clauses(conditions)
    for relation, field in (("techniques", "techniques.name"), ("instrument", "instrumentIds")):
        name = (relations.get(relation, {}).get("where") or {}).get("name")
        if name is not None:
            clauses.append({"terms": {field: name if isinstance(name, list) else [name]}})
    return {"bool": {"filter": clauses}}, relations, conditions


@router.get("/Datasets", summary="PaNOSC Datasets (published only).", responses=BAD_FILTER)
async def panosc_datasets(index: Index, filter_: FilterParam = None) -> list[dict[str, Any]]:
    try:
        parsed = _parse(filter_)
        skip, limit = page_of(parsed)
        query, relations, conditions = _dataset_query(parsed)
    except (QueryError, ValueError) as error:
        raise HTTPException(status_code=400, detail=str(error)) from error
    body = {
        "query": query,
        "sort": [{"creationTime": {"order": "desc"}}, {"pid": {"order": "asc"}}],
        "from": skip,
        "size": limit,
    }
    page = await index.search(body)
    return [panosc_dataset(item, relations, conditions) for item in page.items]


@router.get(
    "/Datasets/count", summary="Number of PaNOSC Datasets matching `where`.", responses=BAD_FILTER
)
async def panosc_datasets_count(
    index: Index,
    where: Annotated[
        str | None, Query(max_length=MAX_FILTER_CHARS, description="LoopBack where JSON.")
    ] = None,
) -> dict[str, int]:
    try:
        query, _, _ = _dataset_query({"where": _parse(where)})
    except (QueryError, ValueError) as error:
        raise HTTPException(status_code=400, detail=str(error)) from error
    page = await index.search({"query": query, "size": 0, "track_total_hits": True})
    return {"count": page.total}


@router.get(
    "/Documents", summary="PaNOSC Documents: proposals of published datasets.", responses=BAD_FILTER
)
async def panosc_documents(
    request: Request, index: Index, filter_: FilterParam = None
) -> list[dict[str, Any]]:
    try:
        parsed = _parse(filter_)
        skip, limit = page_of(parsed)
        relations = includes(parsed, frozenset({"datasets"}))
    except (QueryError, ValueError) as error:
        raise HTTPException(status_code=400, detail=str(error)) from error
    datasets_of = await _published_by(index, "proposalIds")
    proposals = await request.app.state.catalogue.proposals(sorted(datasets_of))
    documents = []
    for proposal_id, datasets in sorted(datasets_of.items()):
        proposal = proposals.get(proposal_id, {})
        document: dict[str, Any] = {
            "pid": proposal_id,
            "isPublic": True,
            "type": "proposal",
            "title": proposal.get("title"),
            "summary": proposal.get("abstract"),
            "startDate": _iso(proposal.get("startTime")),
            "endDate": _iso(proposal.get("endTime")),
        }
        try:
            if not matches(document, parsed.get("where") or {}):
                continue
        except QueryError as error:
            raise HTTPException(status_code=400, detail=str(error)) from error
        if "datasets" in relations:
            document["datasets"] = [{"pid": pid} for pid in datasets]
        documents.append(document)
    return documents[skip : skip + limit]


@router.get(
    "/Instruments", summary="PaNOSC Instruments with published datasets.", responses=BAD_FILTER
)
async def panosc_instruments(index: Index, filter_: FilterParam = None) -> list[dict[str, Any]]:
    try:
        parsed = _parse(filter_)
        skip, limit = page_of(parsed)
    except (QueryError, ValueError) as error:
        raise HTTPException(status_code=400, detail=str(error)) from error
    body = {
        "query": {"bool": {"filter": [published_only()]}},
        "size": 0,
        "aggs": {
            "instruments": {
                "terms": {"field": "instrumentIds", "size": MAX_BUCKETS},
                "aggs": {"locations": {"terms": {"field": "creationLocation", "size": 1}}},
            }
        },
    }
    page = await index.search(body)
    instruments = []
    for bucket in page.aggregations.get("instruments", {}).get("buckets", []):
        locations = bucket.get("locations", {}).get("buckets", [])
        instrument = {
            "pid": bucket["key"],
            "name": bucket["key"],
            "facility": facility_of(locations[0]["key"]) if locations else None,
        }
        try:
            if matches(instrument, parsed.get("where") or {}):
                instruments.append(instrument)
        except QueryError as error:
            raise HTTPException(status_code=400, detail=str(error)) from error
    return instruments[skip : skip + limit]


@router.get(
    "/Datasets/{pid:path}",
    summary="One PaNOSC Dataset (published only).",
    responses={
        404: {"model": Problem, "description": "No published dataset with this pid."},
        **BAD_FILTER,
    },
)
async def panosc_dataset_by_pid(
    pid: str, index: Index, filter_: FilterParam = None
) -> dict[str, Any]:
    """`filter` takes `include` (relations to return, `parameters` scope units) as for lists."""
    try:
        parsed = _parse(filter_)
        relations = includes(parsed, DATASET_RELATIONS)
        conditions = parameter_conditions(relations.get("parameters", {}))
    except (QueryError, ValueError) as error:
        raise HTTPException(status_code=400, detail=str(error)) from error
    body = {"query": {"bool": {"filter": [{"ids": {"values": [pid]}}, published_only()]}}}
    page = await index.search(body)
    if not page.items:
        raise HTTPException(status_code=404, detail=f"no published dataset with pid {pid!r}")
    return panosc_dataset(page.items[0], relations, conditions)


async def _published_by(index: DatasetIndex, field: str) -> dict[str, list[str]]:
    """Value of `field` → pids of published datasets having it."""
    body = {
        "query": {"bool": {"filter": [published_only()]}},
        "size": 0,
        "aggs": {
            "values": {
                "terms": {"field": field, "size": MAX_BUCKETS},
                "aggs": {"pids": {"terms": {"field": "pid", "size": 100}}},
            }
        },
    }
    page = await index.search(body)
    return {
        bucket["key"]: [b["key"] for b in bucket["pids"]["buckets"]]
        for bucket in page.aggregations.get("values", {}).get("buckets", [])
    }


def _iso(value: Any) -> str | None:
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return None if value is None else str(value)
