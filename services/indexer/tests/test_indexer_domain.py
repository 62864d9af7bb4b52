"""The pure rules: metadata flattening, the indexed document, the search query, the mapping."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from scicat_indexer.domain import (
    MAX_METADATA_DEPTH,
    flatten_scientific_metadata,
    indexed_dataset,
    text_query,
)
from scicat_indexer.mapping import (
    MAPPINGS,
    MAX_GRAM,
    METADATA_PAIRS,
    MIN_GRAM,
    SUBSTRING_FIELDS,
    concrete_index,
    index_body,
)
from scicat_schemas.documents import Dataset
from scicat_schemas.units import si_unit, to_si


def pairs(metadata: dict) -> list[dict]:
    return flatten_scientific_metadata(metadata).pairs


# --- metadata flattening -------------------------------------------------------------------------


def test_nested_leaves_become_dotted_keys_with_text_or_number() -> None:
    assert pairs({"sample": {"name": "LaB6", "mass": 1.5, "position": {"x": 3}}}) == [
        {"key": "sample.name", "text": "LaB6"},
        {"key": "sample.mass", "number": 1.5},
        {"key": "sample.position.x", "number": 3.0},
    ]


def test_quantity_is_one_leaf_with_its_unit() -> None:
    metadata = {
        "sample": {"temperature": {"value": 295.5, "unit": "K", "valueSI": 295.5, "unitSI": "K"}}
    }
    assert pairs(metadata) == [
        {
            "key": "sample.temperature",
            "number": 295.5,
            "unit": "K",
            "numberSI": 295.5,
            "unitSI": "K",
        }
    ]


def test_quantity_without_stored_si_is_converted_to_si() -> None:
    [pair] = pairs({"energy": {"value": 5.5, "unit": "keV"}})
    assert pair["unitSI"] == si_unit("eV")
    assert pair["numberSI"] == pytest.approx(to_si(5500, "eV").value)
    assert (pair["number"], pair["unit"]) == (5.5, "keV")


def test_stored_si_values_are_taken_as_the_ingestor_wrote_them() -> None:
    [pair] = pairs({"wavelength": {"value": 1.0, "unit": "Å", "valueSI": 1e-10, "unitSI": "m"}})
    assert (pair["numberSI"], pair["unitSI"]) == (1e-10, "m")


def test_quantity_in_an_unknown_unit_keeps_its_raw_number_without_si() -> None:
    [pair] = pairs({"flux": {"value": 3, "unit": "bananas"}})
    assert pair == {"key": "flux", "number": 3.0, "unit": "bananas"}


def test_quantity_with_text_value_and_empty_unit_keeps_text_only() -> None:
    assert pairs({"mode": {"value": "fly scan", "unit": ""}}) == [
        {"key": "mode", "text": "fly scan"}
    ]


def test_extra_keys_of_a_quantity_are_flattened_as_children() -> None:
    energy, error = pairs({"energy": {"value": 12, "unit": "keV", "error": 0.01}})
    assert {k: energy[k] for k in ("key", "number", "unit")} == {
        "key": "energy",
        "number": 12.0,
        "unit": "keV",
    }
    assert error == {"key": "energy.error", "number": 0.01}


def test_value_and_unit_object_with_object_value_is_not_a_quantity() -> None:
    assert pairs({"q": {"value": {"a": 1}, "unit": "m"}}) == [
        {"key": "q.value.a", "number": 1.0},
        {"key": "q.unit", "text": "m"},
    ]


def test_list_of_plain_values_is_one_leaf_with_every_value() -> None:
    assert pairs({"angles": [0, 45.5, 90], "tags": ["a", "b"]}) == [
        {"key": "angles", "number": [0.0, 45.5, 90.0]},
        {"key": "tags", "text": ["a", "b"]},
    ]


def test_objects_in_a_list_are_flattened_under_the_list_path() -> None:
    metadata = {"detectors": [{"name": "eiger"}, {"name": "pilatus", "exposure": 0.1}]}
    assert pairs(metadata) == [
        {"key": "detectors.name", "text": "eiger"},
        {"key": "detectors.name", "text": "pilatus"},
        {"key": "detectors.exposure", "number": 0.1},
    ]


def test_booleans_are_text_not_numbers() -> None:
    assert pairs({"shutter_open": True, "dark": False}) == [
        {"key": "shutter_open", "text": "true"},
        {"key": "dark", "text": "false"},
    ]


def test_values_a_number_field_refuses_become_text() -> None:
    assert pairs({"a": float("nan"), "b": float("inf"), "c": 10**400}) == [
        {"key": "a", "text": "nan"},
        {"key": "b", "text": "inf"},
        {"key": "c", "text": str(10**400)},
    ]


def test_null_and_empty_leaves_are_skipped() -> None:
    metadata = {"a": None, "b": [], "c": {}, "d": [None], "e": 1}
    assert pairs(metadata) == [{"key": "e", "number": 1.0}]


def test_pairs_beyond_the_limit_are_left_out_and_reported() -> None:
    flattened = flatten_scientific_metadata({f"k{i}": i for i in range(10)}, max_pairs=4)
    assert [p["key"] for p in flattened.pairs] == ["k0", "k1", "k2", "k3"]
    assert flattened.truncated


def test_long_value_lists_are_cut_and_reported() -> None:
    flattened = flatten_scientific_metadata({"spectrum": list(range(500))}, max_values=3)
    assert flattened.pairs == [{"key": "spectrum", "number": [0.0, 1.0, 2.0]}]
    assert flattened.truncated


def test_metadata_nested_deeper_than_the_limit_is_left_out_and_reported() -> None:
    deep: dict = {"leaf": 1}
    for _ in range(MAX_METADATA_DEPTH + 5):
        deep = {"n": deep}
    flattened = flatten_scientific_metadata({"shallow": "x", "deep": deep})
    assert flattened.pairs == [{"key": "shallow", "text": "x"}]
    assert flattened.truncated


def test_ordinary_metadata_is_not_reported_as_truncated() -> None:
    assert not flatten_scientific_metadata({"a": {"b": [1, 2]}}).truncated


# --- the indexed document ------------------------------------------------------------------------


def test_indexed_dataset_keeps_the_stored_dataset_and_adds_the_pairs(
    make_dataset: Callable[..., Dataset],
) -> None:
    dataset = make_dataset(pipelineRevision=7, facilityField="kept")
    indexed = indexed_dataset(dataset)
    assert indexed.pid == "local/11012345/scan_001"
    assert indexed.revision == 7
    assert indexed.source["facilityField"] == "kept"
    assert indexed.source["scientificMetadata"] == dataset.scientificMetadata
    assert indexed.source["creationTime"] == "2025-03-01T08:00:00Z"
    assert indexed.source[METADATA_PAIRS] == [
        {
            "key": "sample.temperature",
            "number": 295.5,
            "unit": "K",
            "numberSI": 295.5,
            "unitSI": "K",
        }
    ]
    assert not indexed.metadata_truncated


# --- the search query ----------------------------------------------------------------------------


def _clauses(query: dict) -> list[dict]:
    assert query["bool"]["minimum_should_match"] == 1
    return query["bool"]["should"]


def test_no_text_or_blank_text_matches_everything() -> None:
    assert text_query(None) == {"match_all": {}}
    assert text_query("   ") == {"match_all": {}}


def test_fragment_of_gram_length_is_one_ngram_term_per_field() -> None:
    for fragment in ("abc", "x" * MAX_GRAM):
        clauses = _clauses(text_query(fragment))
        assert clauses == [
            {"match": {f"{name}.ngram": {"query": fragment, "operator": "and"}}}
            for name in SUBSTRING_FIELDS
        ]


def test_short_fragment_is_a_case_insensitive_wildcard_on_the_keyword_subfield() -> None:
    clauses = _clauses(text_query("Ab"))
    assert clauses == [
        {"wildcard": {f"{name}.lower": {"value": "*Ab*", "case_insensitive": True}}}
        for name in SUBSTRING_FIELDS
    ]


def test_fragment_longer_than_max_gram_is_a_wildcard() -> None:
    fragment = "y" * (MAX_GRAM + 1)
    [first, *_] = _clauses(text_query(fragment))
    assert first == {
        "wildcard": {"datasetName.lower": {"value": f"*{fragment}*", "case_insensitive": True}}
    }


def test_wildcard_characters_in_the_fragment_are_literal() -> None:
    [first, *_] = _clauses(text_query("*?"))
    assert first["wildcard"]["datasetName.lower"]["value"] == "*\\*\\?*"
    [first, *_] = _clauses(text_query("a\\"))
    assert first["wildcard"]["datasetName.lower"]["value"] == "*a\\\\*"


def test_fragment_is_trimmed_before_choosing_the_path() -> None:
    [first, *_] = _clauses(text_query("  ab  "))
    assert first["wildcard"]["datasetName.lower"]["value"] == "*ab*"


# --- the mapping ---------------------------------------------------------------------------------


def test_mapping_never_grows_from_documents() -> None:
    assert MAPPINGS["dynamic"] is False
    assert MAPPINGS["properties"]["scientificMetadata"] == {"type": "object", "enabled": False}
    assert MAPPINGS["properties"][METADATA_PAIRS]["type"] == "nested"


def test_every_substring_field_has_ngram_and_lowercase_keyword_subfields() -> None:
    for name in SUBSTRING_FIELDS:
        field = MAPPINGS
        for part in name.split("."):
            field = field["properties"][part]
        subfields = field["fields"]
        assert subfields["lower"]["normalizer"] == "lowercase_keyword"
        assert subfields["ngram"]["analyzer"] == "substring_ngram"


def test_index_is_versioned_behind_its_alias_and_allows_the_gram_range() -> None:
    body = index_body("datasets")
    assert concrete_index("datasets") == "datasets-v1"
    assert body["aliases"] == {"datasets": {"is_write_index": True}}
    assert body["settings"]["index"]["max_ngram_diff"] == MAX_GRAM - MIN_GRAM
