"""The search request → OpenSearch query rules, without OpenSearch."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from scicat_indexer.conditions import (
    Condition,
    QueryError,
    Relation,
    check_units,
    condition_clause,
    parse_condition,
)
from scicat_indexer.query import (
    SearchRequest,
    decode_cursor,
    encode_cursor,
    search_body,
    visibility_filter,
)
from scicat_schemas.units import to_si


@dataclass(frozen=True)
class Viewer:
    authenticated: bool
    groups: frozenset[str]


ANONYMOUS = Viewer(False, frozenset())


def _filters(condition: Condition) -> list[dict]:
    return condition_clause(condition)["nested"]["query"]["bool"]["filter"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("energy>5keV", Condition(key="energy", relation=Relation.GREATER, value=5, unit="keV")),
        (
            "energy >= 5 keV",
            Condition(key="energy", relation=Relation.GREATER_OR_EQUAL, value=5, unit="keV"),
        ),
        (
            "sample.temperature<300",
            Condition(key="sample.temperature", relation=Relation.LESS, value=300),
        ),
        (
            "energy=5..6 keV",
            Condition(key="energy", relation=Relation.RANGE, value=[5, 6], unit="keV"),
        ),
        ("sample.name=LaB6", Condition(key="sample.name", value="LaB6")),
        ("sample.name~lab", Condition(key="sample.name", relation=Relation.CONTAINS, value="lab")),
        ("detector.mode", Condition(key="detector.mode", relation=Relation.EXISTS)),
        (
            "wavelength<=1.5Å",
            Condition(key="wavelength", relation=Relation.LESS_OR_EQUAL, value=1.5, unit="Å"),
        ),
    ],
)
def test_condition_syntax_becomes_a_condition(text: str, expected: Condition) -> None:
    assert parse_condition(text) == expected


@pytest.mark.parametrize("text", ["energy>high", "", "a<"])
def test_malformed_conditions_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(QueryError):
        parse_condition(text)


def test_condition_with_a_unit_compares_si_values_in_the_si_unit() -> None:
    filters = _filters(Condition(key="energy", relation=Relation.GREATER, value=5, unit="keV"))
    si = to_si(5, "keV")
    assert {"term": {"scientificMetadataPairs.unitSI": si.unit}} in filters
    assert {"range": {"scientificMetadataPairs.numberSI": {"gt": si.value}}} in filters


def test_key_with_or_without_value_suffix_is_the_same_pair() -> None:
    with_suffix = _filters(Condition(key="energy.value", relation=Relation.GREATER, value=5))
    assert with_suffix == _filters(Condition(key="energy", relation=Relation.GREATER, value=5))
    assert with_suffix[0] == {"term": {"scientificMetadataPairs.key": "energy"}}


def test_unknown_unit_is_a_query_error_naming_the_unit() -> None:
    with pytest.raises(QueryError, match="bananas"):
        condition_clause(
            Condition(key="energy", relation=Relation.GREATER, value=5, unit="bananas")
        )


def test_unit_of_another_dimension_than_the_stored_values_is_a_query_error() -> None:
    condition = Condition(key="sample.temperature", relation=Relation.GREATER, value=5, unit="keV")
    stored = {"pairs": {"k0": {"units": {"buckets": [{"key": "K", "doc_count": 3}]}}}}
    with pytest.raises(QueryError, match=r"not compatible.*K"):
        check_units([condition], stored)
    check_units([Condition(key="t", relation=Relation.GREATER, value=5, unit="mK")], stored)


def test_ordering_relations_need_numbers() -> None:
    with pytest.raises(QueryError, match="needs a number"):
        condition_clause(Condition(key="sample.name", relation=Relation.GREATER, value="LaB6"))


def test_contains_is_a_case_insensitive_wildcard_with_literal_special_characters() -> None:
    [_, contains] = _filters(Condition(key="a", relation=Relation.CONTAINS, value="X*y"))
    assert contains == {
        "wildcard": {
            "scientificMetadataPairs.text.lower": {"value": "*x\\*y*", "case_insensitive": True}
        }
    }


def test_anonymous_sees_published_and_members_see_their_groups_too() -> None:
    assert visibility_filter(ANONYMOUS) == {"term": {"isPublished": True}}
    member = visibility_filter(Viewer(True, frozenset({"b", "a"})))
    assert member["bool"]["should"][1] == {"terms": {"ownerGroup": ["a", "b"]}}
    assert member["bool"]["should"][2] == {"terms": {"accessGroups": ["a", "b"]}}


def test_visibility_is_inside_the_query_so_totals_and_facets_respect_it() -> None:
    request = SearchRequest(text="scan", facets=["instrument"])
    body = search_body(request, visibility_filter(ANONYMOUS))
    assert body["query"]["bool"]["filter"][0] == {"term": {"isPublished": True}}
    assert "post_filter" not in body
    assert body["aggs"]["instrument"] == {"terms": {"field": "instrumentIds", "size": 20}}


def test_sort_always_ends_with_pid_so_cursors_are_stable() -> None:
    body = search_body(SearchRequest(sort=["size:desc"]), {"match_all": {}})
    assert body["sort"] == [{"size": {"order": "desc"}}, {"pid": {"order": "asc"}}]


def test_cursor_round_trips_and_is_refused_for_another_sort_or_garbage() -> None:
    cursor = encode_cursor([1740816000000, "local/1/scan_001"], ["creationTime:desc"])
    assert decode_cursor(cursor, ["creationTime:desc"]) == [1740816000000, "local/1/scan_001"]
    with pytest.raises(QueryError, match="another sort"):
        decode_cursor(cursor, ["size:asc"])
    with pytest.raises(QueryError):
        decode_cursor("not-a-cursor!", ["creationTime:desc"])


def test_shallow_paging_beyond_the_result_window_is_refused() -> None:
    with pytest.raises(ValueError, match="search_after"):
        SearchRequest(skip=9995, limit=10)
    SearchRequest(skip=9995, limit=10, search_after="x")
