"""What each part of a search costs the store on its own: the requests the search API builds
for an anonymous caller, sent straight to OpenSearch, so a slow query can be taken apart."""

from __future__ import annotations

import statistics
import time
from typing import Any

import httpx

from scicat_indexer.auth import Principal
from scicat_indexer.conditions import condition_clause, parse_condition
from scicat_indexer.freetext import text_query
from scicat_indexer.query import SearchRequest, facet_aggregations, search_body, visibility_filter


def operation_bodies(facets: list[str]) -> dict[str, dict[str, Any]]:
    """One OpenSearch request per operation a search is made of, as the API builds them for an
    anonymous caller: what each costs the store on its own."""
    visible = visibility_filter(Principal.anonymous())
    only_visible = {"bool": {"filter": [visible]}}

    def count(*clauses: dict[str, Any]) -> dict[str, Any]:
        return {
            "query": {"bool": {"filter": [visible, *clauses]}},
            "size": 0,
            "track_total_hits": True,
        }

    bodies: dict[str, dict[str, Any]] = {
        "visibility filter, count only": count(),
        "visibility filter, 20 hits unsorted": {
            "query": only_visible,
            "size": 20,
            "track_total_hits": True,
        },
        "visibility filter, 20 hits sorted (creationTime, pid)": search_body(
            SearchRequest(), visible
        ),
    }
    for fragment in ("scan_012345", "lab6", "img_0000"):
        bodies[f"free text {fragment!r}, count only"] = count(text_query(fragment))
    for condition in ("energy=8..9 keV", "sample.temperature>300K", "energy>5keV"):
        bodies[f"condition {condition}, count only"] = count(
            condition_clause(parse_condition(condition))
        )
    request = SearchRequest.model_validate({"facets": facets})  # names checked here
    for name, aggregation in facet_aggregations(request).items():
        bodies[f"facet {name} alone"] = {**count(), "aggs": {name: aggregation}}
    return bodies


async def operation_costs(url: str, runs: int, facets: list[str]) -> list[tuple[str, int, float]]:
    """(operation, matches, median ms) straight against the store, without the API."""
    rows = []
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        for name, body in operation_bodies(facets).items():
            timings, total = [], 0
            for _ in range(runs):
                began = time.perf_counter()
                response = await http.post("/datasets/_search", json=body)
                timings.append(time.perf_counter() - began)
                response.raise_for_status()
                total = response.json()["hits"]["total"]["value"]
            rows.append((name, total, statistics.median(timings) * 1000))
    return rows
