"""The search request and the OpenSearch query it becomes. Pure: no I/O.

A search is free text, conditions on scientific metadata, filters, facets, a sort and a page.
Every query this module builds carries the caller's visibility filter inside `query`, so hits,
totals and facet counts all agree with what the caller may see (never post-filtered).

Conditions compare against the flattened metadata pairs (`key` = dotted path). With a unit, the
value is converted to SI (`scicat_schemas.units`, the same conversion the ingestor and indexer use
for stored values) and compared with `numberSI` in that SI unit, so `energy > 5 keV` finds a
dataset stored as `5500 eV`. A key may end in `.value` or not (SciCat #138): both name the same
pair.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scicat_indexer.domain import escape_wildcard, text_query
from scicat_indexer.mapping import FACET_FIELDS, METADATA_PAIRS, SORT_FIELDS
from scicat_schemas.units import UnitError, to_si

MAX_RESULT_WINDOW: Final = 10_000
"""OpenSearch's default `index.max_result_window`: `skip + limit` beyond it is refused."""

HISTOGRAM_FACET: Final = "creationTime"
FacetName = Literal["instrument", "beamtime", "proposal", "pi", "technique", "type", "creationTime"]
FilterName = Literal["instrument", "beamtime", "proposal", "pi", "technique", "type"]
EQUAL_TOLERANCE: Final = 1e-9
"""Relative tolerance of `eq` on numbers: SI conversion may differ in the last bits."""


class QueryError(ValueError):
    """A request that cannot become a query (unknown unit, bad cursor …): a 400 for the caller."""


class Relation(StrEnum):
    EQUAL = "eq"
    CONTAINS = "contains"
    LESS = "lt"
    LESS_OR_EQUAL = "lte"
    GREATER = "gt"
    GREATER_OR_EQUAL = "gte"
    RANGE = "range"
    EXISTS = "exists"


Scalar = str | float | int | bool


class Condition(BaseModel):
    """One condition on a scientific metadata key."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(
        min_length=1,
        max_length=1024,
        description="Dotted path of the metadata key, e.g. `sample.temperature`; a trailing "
        "`.value` is the same key.",
    )
    relation: Relation = Field(default=Relation.EQUAL, description="How to compare.")
    value: Scalar | list[float] | None = Field(
        default=None,
        description="Number, text or boolean; `[low, high]` for `range`; none for `exists`.",
    )
    unit: str | None = Field(
        default=None, description="Unit of `value`; values stored in any compatible unit match."
    )

    @property
    def pair_key(self) -> str:
        return self.key.removesuffix(".value")


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


def visibility_filter(viewer: Viewer) -> dict[str, Any]:
    """Published datasets, plus those whose `ownerGroup` or `accessGroups` the viewer is in."""
    published: dict[str, Any] = {"term": {"isPublished": True}}
    if not viewer.authenticated or not viewer.groups:
        return published
    groups = sorted(viewer.groups)
    return {
        "bool": {
            "should": [
                published,
                {"terms": {"ownerGroup": groups}},
                {"terms": {"accessGroups": groups}},
            ],
            "minimum_should_match": 1,
        }
    }


def published_only() -> dict[str, Any]:
    return {"term": {"isPublished": True}}


_CONDITION = re.compile(r"^\s*(?P<key>[^<>=~]+?)\s*(?P<op>>=|<=|>|<|=|~)\s*(?P<rest>.*?)\s*$")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_QUANTITY = re.compile(rf"^(?P<number>{_NUMBER})\s*(?P<unit>.*)$")
_RANGE = re.compile(rf"^(?P<low>{_NUMBER})\s*\.\.\s*(?P<high>{_NUMBER})\s*(?P<unit>.*)$")
_OPERATORS: Final = {
    ">=": Relation.GREATER_OR_EQUAL,
    "<=": Relation.LESS_OR_EQUAL,
    ">": Relation.GREATER,
    "<": Relation.LESS,
    "=": Relation.EQUAL,
    "~": Relation.CONTAINS,
}


def parse_condition(text: str) -> Condition:
    """`energy>5keV`, `energy>=5 keV`, `energy=5..6 keV` (range), `sample.name=LaB6`,
    `sample.name~lab` (contains), `sample.temperature` alone (exists)."""
    match = _CONDITION.match(text)
    if match is None:
        key = text.strip()
        if not key or any(c in key for c in "<>=~"):
            raise QueryError(f"condition {text!r} is not `key`, `key<op>value[unit]` or `key~text`")
        return Condition(key=key, relation=Relation.EXISTS)
    key, op, rest = match["key"].strip(), match["op"], match["rest"]
    relation = _OPERATORS[op]
    if relation is Relation.CONTAINS:
        return Condition(key=key, relation=relation, value=rest)
    if relation is Relation.EQUAL and (span := _RANGE.match(rest)):
        return Condition(
            key=key,
            relation=Relation.RANGE,
            value=[float(span["low"]), float(span["high"])],
            unit=span["unit"] or None,
        )
    if quantity := _QUANTITY.match(rest):
        return Condition(
            key=key,
            relation=relation,
            value=float(quantity["number"]),
            unit=quantity["unit"] or None,
        )
    if relation is not Relation.EQUAL:
        raise QueryError(f"condition {text!r}: {op} needs a number, e.g. `{key}{op}5 keV`")
    return Condition(key=key, relation=relation, value=rest)


def condition_clause(condition: Condition) -> dict[str, Any]:
    """A nested query: one metadata pair with this key satisfies the condition."""
    field = f"{METADATA_PAIRS}."
    must: list[dict[str, Any]] = [{"term": {f"{field}key": condition.pair_key}}]
    relation, value = condition.relation, condition.value
    if relation is Relation.EXISTS:
        pass
    elif relation is Relation.CONTAINS:
        if value is None or isinstance(value, list) or str(value) == "":
            raise QueryError(f"condition on {condition.key!r}: contains needs a text value")
        pattern = f"*{escape_wildcard(str(value).lower())}*"
        must.append(
            {"wildcard": {f"{field}text.lower": {"value": pattern, "case_insensitive": True}}}
        )
    elif condition.unit is not None:
        number, si_unit = _si_value(condition)
        must.append({"term": {f"{field}unitSI": si_unit}})
        must.append(_compare(f"{field}numberSI", relation, number))
    elif isinstance(value, bool) or isinstance(value, str):
        if relation is not Relation.EQUAL:
            raise QueryError(
                f"condition on {condition.key!r}: {relation.value} needs a number, not {value!r}"
            )
        text = ("true" if value else "false") if isinstance(value, bool) else value.lower()
        must.append({"term": {f"{field}text.lower": text}})
    else:
        must.append(_compare(f"{field}number", relation, _number_or_range(condition)))
    return {"nested": {"path": METADATA_PAIRS, "query": {"bool": {"filter": must}}}}


def _si_value(condition: Condition) -> tuple[float | list[float], str]:
    value = condition.value
    if isinstance(value, bool) or not isinstance(value, int | float | list):
        raise QueryError(f"condition on {condition.key!r}: a value with a unit must be a number")
    try:
        si = to_si(_number_or_range(condition), str(condition.unit))
    except UnitError as error:
        raise QueryError(f"condition on {condition.key!r}: {error}") from error
    return si.value, si.unit


def _number_or_range(condition: Condition) -> float | list[float]:
    value = condition.value
    if condition.relation is Relation.RANGE:
        if not isinstance(value, list) or len(value) != 2:
            raise QueryError(f"condition on {condition.key!r}: range needs [low, high]")
        return [float(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise QueryError(f"condition on {condition.key!r}: {condition.relation} needs a number")
    return float(value)


def _compare(field: str, relation: Relation, number: float | list[float]) -> dict[str, Any]:
    if relation is Relation.RANGE:
        assert isinstance(number, list)
        low, high = sorted(number)
        return {"range": {field: {"gte": low, "lte": high}}}
    assert isinstance(number, float)
    if relation is Relation.EQUAL:
        slack = abs(number) * EQUAL_TOLERANCE
        return {"range": {field: {"gte": number - slack, "lte": number + slack}}}
    return {"range": {field: {relation.value: number}}}


def stored_units_body(conditions: list[Condition], visible: dict[str, Any]) -> dict[str, Any]:
    """Which SI units the visible datasets hold each unit-bearing condition's key in.

    Lets the API answer 400 for `temperature > 5 keV` instead of silently matching nothing.
    """
    aggs = {
        f"k{i}": {
            "filter": {"term": {f"{METADATA_PAIRS}.key": c.pair_key}},
            "aggs": {"units": {"terms": {"field": f"{METADATA_PAIRS}.unitSI", "size": 10}}},
        }
        for i, c in enumerate(conditions)
    }
    return {
        "size": 0,
        "query": {"bool": {"filter": [visible]}},
        "aggs": {"pairs": {"nested": {"path": METADATA_PAIRS}, "aggs": aggs}},
    }


def check_units(conditions: list[Condition], aggregations: dict[str, Any]) -> None:
    """`QueryError` when a condition's unit measures another dimension than the stored values."""
    pairs = aggregations.get("pairs", {})
    for i, condition in enumerate(conditions):
        stored = [b["key"] for b in pairs.get(f"k{i}", {}).get("units", {}).get("buckets", [])]
        _, si_unit = _si_value(condition)
        if stored and si_unit not in stored:
            raise QueryError(
                f"condition on {condition.key!r}: unit {condition.unit!r} ({si_unit}) is not "
                f"compatible with the stored values, which are in {', '.join(stored)}"
            )


def unit_conditions(request: SearchRequest) -> list[Condition]:
    return [
        c
        for c in request.conditions
        if c.unit is not None and c.relation not in (Relation.EXISTS, Relation.CONTAINS)
    ]


def search_body(request: SearchRequest, visible: dict[str, Any]) -> dict[str, Any]:
    """The OpenSearch request of `request`, restricted to `visible`."""
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
        query["bool"]["must"] = [text_query(text)]
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
