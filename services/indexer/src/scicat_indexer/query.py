"""The search request and the OpenSearch query it becomes. Pure: no I/O.

A search is free text, conditions on scientific metadata (`conditions.py`), filters, facets, a
sort and a page. Every query this module builds carries the caller's visibility filter inside
`query`, so hits, totals and facet counts all agree with what the caller may see (never
post-filtered).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scicat_indexer.conditions import (
    Condition,
    QueryError,
    Relation,
    condition_clause,
)
from scicat_indexer.freetext import text_query
from scicat_indexer.mapping import FACET_FIELDS, SORT_FIELDS

MAX_RESULT_WINDOW: Final = 10_000
"""OpenSearch's default `index.max_result_window`: `skip + limit` beyond it is refused."""

HISTOGRAM_FACET: Final = "creationTime"
FacetName = Literal["instrument", "beamtime", "proposal", "pi", "technique", "type", "creationTime"]
FilterName = Literal["instrument", "beamtime", "proposal", "pi", "technique", "type"]


class SearchRequest(BaseModel):
    """A dataset search (the JSON body of `POST /datasets/search`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "text": "LaB6",
                    "conditions": [
                        {"key": "energy", "relation": "gt", "value": 5, "unit": "keV"},
                        {"key": "sample.name", "relation": "contains", "value": "lab"},
                    ],
                    "filters": {"instrument": ["P08"]},
                    "facets": ["instrument", "creationTime"],
                    "sort": ["creationTime:desc"],
                    "limit": 20,
                }
            ]
        },
    )

    text: str | None = Field(
        default=None,
        max_length=1000,
        description="Fragment of a name, file name, source folder, description, keyword, string "
        "metadata value, proposal or beamtime id, proposal title or PI, in any case.",
    )
    conditions: list[Condition] = Field(
        default_factory=list, max_length=50, description="All must hold."
    )
    filters: dict[FilterName, list[str]] = Field(
        default_factory=dict, description="Facet values to keep (OR within a facet, AND across)."
    )
    created_from: datetime | None = Field(
        default=None, description="creationTime ≥ (ISO 8601; UTC when no offset is given)."
    )
    created_to: datetime | None = Field(
        default=None, description="creationTime < (ISO 8601; UTC when no offset is given)."
    )
    facets: list[FacetName] = Field(default_factory=list, description="Counts to return.")
    facet_size: int = Field(default=20, ge=1, le=500, description="Buckets per terms facet.")
    histogram_interval: Literal["day", "week", "month", "quarter", "year"] = Field(
        default="month", description="Bucket of the creationTime histogram."
    )
    sort: list[str] = Field(
        default_factory=lambda: ["creationTime:desc"],
        max_length=5,
        description="`field[:asc|desc]`, fields: "
        f"{', '.join([*SORT_FIELDS, 'relevance'])}; ties are broken by pid.",
    )
    limit: int = Field(default=20, ge=1, le=1000, description="Page size.")
    skip: int = Field(default=0, ge=0, description="Datasets to skip (shallow paging only).")
    search_after: str | None = Field(
        default=None,
        max_length=4096,
        description="Opaque cursor `next` of the previous page: deep paging without a limit.",
    )

    @model_validator(mode="after")
    def _shallow_paging_within_the_result_window(self) -> SearchRequest:
        if self.search_after is None and self.skip + self.limit > MAX_RESULT_WINDOW:
            raise ValueError(
                f"skip + limit must be at most {MAX_RESULT_WINDOW}; page deeper with "
                "`search_after` (the `next` cursor of each page)"
            )
        return self

    @field_validator("sort")
    @classmethod
    def _known_sort_fields(cls, sort: list[str]) -> list[str]:
        for item in sort:
            name, _, order = item.partition(":")
            if name not in SORT_FIELDS and name != "relevance":
                raise ValueError(f"cannot sort by {name!r}; use one of {sorted(SORT_FIELDS)}")
            if order not in ("", "asc", "desc"):
                raise ValueError(f"sort order {order!r} is neither asc nor desc")
        return sort


class Viewer(Protocol):
    """Who is asking (`scicat_indexer.auth.Principal` fits)."""

    @property
    def authenticated(self) -> bool: ...

    @property
    def groups(self) -> frozenset[str]: ...


def membership_filter(viewer: Viewer) -> dict[str, Any] | None:
    """Datasets whose `ownerGroup` or `accessGroups` the viewer is in; None for no groups."""
    if not viewer.authenticated or not viewer.groups:
        return None
    groups = sorted(viewer.groups)
    return {
        "bool": {
            "should": [{"terms": {"ownerGroup": groups}}, {"terms": {"accessGroups": groups}}],
            "minimum_should_match": 1,
        }
    }


def visibility_filter(viewer: Viewer) -> dict[str, Any]:
    """Published datasets, plus those whose `ownerGroup` or `accessGroups` the viewer is in."""
    published: dict[str, Any] = {"term": {"isPublished": True}}
    members = membership_filter(viewer)
    if members is None:
        return published
    return {"bool": {"should": [published, *members["bool"]["should"]], "minimum_should_match": 1}}


def published_only() -> dict[str, Any]:
    return {"term": {"isPublished": True}}


def unit_conditions(request: SearchRequest) -> list[Condition]:
    return [
        c
        for c in request.conditions
        if c.unit is not None and c.relation not in (Relation.EXISTS, Relation.CONTAINS)
    ]


def search_body(
    request: SearchRequest, visible: dict[str, Any], members: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The OpenSearch request of `request`, restricted to `visible`.

    `members` (`membership_filter`) are the datasets in which free text also searches PI
    e-mail addresses.
    """
    filters: list[dict[str, Any]] = [visible]
    filters += [condition_clause(c) for c in request.conditions]
    filters += [
        {"terms": {FACET_FIELDS[name]: values}}
        for name, values in request.filters.items()
        if values
    ]
    if request.created_from or request.created_to:
        span = {"gte": request.created_from, "lt": request.created_to}
        filters.append({"range": {"creationTime": {k: _utc_iso(v) for k, v in span.items() if v}}})
    text = (request.text or "").strip()
    query: dict[str, Any] = {"bool": {"filter": filters}}
    if text:
        query["bool"]["must"] = [text_query(text, members)]
    sort = sort_clause(request.sort)
    body: dict[str, Any] = {
        "query": query,
        "sort": sort,
        "size": request.limit,
        "track_total_hits": True,
    }
    if request.search_after is not None:
        body["search_after"] = decode_cursor(request.search_after, request.sort)
    else:
        body["from"] = request.skip
    aggs = facet_aggregations(request)
    if aggs:
        body["aggs"] = aggs
    return body


def _utc_iso(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()


def sort_clause(sort: list[str]) -> list[dict[str, Any]]:
    clauses: list[dict[str, Any]] = []
    for item in sort:
        name, _, order = item.partition(":")
        if name == "relevance":
            clauses.append({"_score": {"order": order or "desc"}})
        else:
            clauses.append({SORT_FIELDS[name]: {"order": order or "asc"}})
    if not any("pid" in clause for clause in clauses):
        clauses.append({"pid": {"order": "asc"}})
    return clauses


def facet_aggregations(request: SearchRequest) -> dict[str, Any]:
    aggs: dict[str, Any] = {}
    for name in request.facets:
        if name == HISTOGRAM_FACET:
            aggs[name] = {
                "date_histogram": {
                    "field": "creationTime",
                    "calendar_interval": request.histogram_interval,
                    "min_doc_count": 1,
                }
            }
        else:
            aggs[name] = {"terms": {"field": FACET_FIELDS[name], "size": request.facet_size}}
    return aggs


def facet_counts(aggregations: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """OpenSearch buckets as `{facet: [{"value", "count"}]}` (histogram values are ISO dates)."""
    facets: dict[str, list[dict[str, Any]]] = {}
    for name, answer in aggregations.items():
        facets[name] = [
            {
                "value": bucket.get("key_as_string", bucket["key"])
                if name == HISTOGRAM_FACET
                else bucket["key"],
                "count": bucket["doc_count"],
            }
            for bucket in answer.get("buckets", [])
        ]
    return facets


def encode_cursor(sort_values: list[Any], sort: list[str]) -> str:
    """The opaque `search_after` cursor: the last hit's sort values, bound to the sort."""
    raw = json.dumps({"sort": sort, "after": sort_values}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: list[str]) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after, cursor_sort = data["after"], data["sort"]
    except (ValueError, binascii.Error, KeyError, TypeError) as error:
        raise QueryError("search_after is not a cursor this API returned") from error
    if cursor_sort != sort or not isinstance(after, list):
        raise QueryError("search_after belongs to a search with another sort; start again")
    return after
