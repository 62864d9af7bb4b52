"""PaNOSC filter language → OpenSearch clauses and PaNOSC models, without OpenSearch."""

from __future__ import annotations

import pytest

from scicat_indexer.conditions import Condition, QueryError, Relation
from scicat_indexer.panosc import (
    DATASET_FIELDS,
    matches,
    page_of,
    parameter_conditions,
    parameters_of,
    where_clauses,
)


def test_parameter_scope_becomes_one_condition_with_its_unit() -> None:
    scope = {
        "where": {
            "and": [{"name": "wavelength"}, {"value": {"between": [900, 1100]}}, {"unit": "nm"}]
        }
    }
    assert parameter_conditions(scope) == [
        Condition(key="wavelength", relation=Relation.RANGE, value=[900, 1100], unit="nm")
    ]
    assert parameter_conditions({"where": {"name": "mode", "value": "fly"}}) == [
        Condition(key="mode", relation=Relation.EQUAL, value="fly")
    ]
    assert parameter_conditions({"where": {"name": "mode"}}) == [
        Condition(key="mode", relation=Relation.EXISTS)
    ]


@pytest.mark.parametrize(
    "scope",
    [
        {"where": {"value": {"gt": 1}}},
        {"where": {"name": "energy", "value": {"near": 1}}},
    ],
)
def test_parameter_scopes_without_name_or_with_unknown_operators_are_refused(scope: dict) -> None:
    with pytest.raises(QueryError):
        parameter_conditions(scope)


def test_where_on_dataset_fields_becomes_filter_clauses() -> None:
    clauses = where_clauses(
        {"and": [{"title": {"ilike": "%Film_a%"}}, {"creationDate": {"gte": "2025-01-01"}}]},
        DATASET_FIELDS,
    )
    assert clauses == [
        {"wildcard": {"datasetName.lower": {"value": "*Film_a*", "case_insensitive": True}}},
        {"range": {"creationTime": {"gte": "2025-01-01"}}},
    ]
    assert where_clauses({"isPublic": False}, DATASET_FIELDS) == [{"match_none": {}}]
    with pytest.raises(QueryError, match="owner"):
        where_clauses({"owner": "x"}, DATASET_FIELDS)


def test_like_patterns_on_small_records() -> None:
    record = {"pid": "DOOR-1", "title": "Thin films"}
    assert matches(record, {"title": {"ilike": "thin%"}})
    assert not matches(record, {"title": {"like": "thin%"}})
    assert matches(record, {"or": [{"pid": "x"}, {"pid": {"inq": ["DOOR-1"]}}]})


def test_limit_and_skip_are_bounded() -> None:
    assert page_of({}) == (0, 100)
    assert page_of({"limit": 5, "skip": 10}) == (10, 5)
    for bad in ({"limit": 0}, {"limit": 5000}, {"skip": -1}, {"limit": "10"}):
        with pytest.raises(QueryError):
            page_of(bad)


def test_parameters_asked_with_a_unit_are_returned_in_that_unit() -> None:
    dataset = {
        "pid": "p/1",
        "scientificMetadata": {"energy": {"value": 5500, "unit": "eV"}, "sample": {"name": "Si"}},
    }
    energy, sample = parameters_of(dataset, [Condition(key="energy", value=5, unit="keV")])
    assert (energy["name"], energy["value"], energy["unit"]) == (
        "energy",
        pytest.approx(5.5),
        "keV",
    )
    assert (sample["name"], sample["value"], sample["unit"]) == ("sample.name", "Si", None)
