"""The pure rules: metadata flattening, the indexed document, the search query, the mapping."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from scicat_indexer.domain import (
    MAX_METADATA_DEPTH,
    CatalogueContext,
    flatten_scientific_metadata,
    indexed_dataset,
)
from scicat_indexer.freetext import (
    MAX_VALUE_CHARS,
    MEMBER_TEXT_FIELD,
    TEXT_FIELD,
    VALUE_END,
    VALUE_START,
    text_query,
)
from scicat_indexer.mapping import (
    DERIVED,
    MAPPING_REVISION,
    MAPPINGS,
    METADATA_PAIRS,
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


def test_longer_fragment_needs_all_its_trigrams_as_a_phrase() -> None:
    [clause] = _clauses(text_query("LaB6 s"))
    assert clause == {
        "bool": {
            "filter": [{"term": {TEXT_FIELD: gram}} for gram in ("lab", "6 s")],
            "must": [{"match_phrase": {TEXT_FIELD: "lab6 s"}}],
        }
    }


def test_filtered_trigrams_cover_every_character_once_and_repeat_never() -> None:
    [clause] = _clauses(text_query("scan_012345"))
    grams = [f["term"][TEXT_FIELD] for f in clause["bool"]["filter"]]
    assert grams == ["sca", "n_0", "123", "345"]
    [clause] = _clauses(text_query("aaaaaa"))
    assert clause["bool"]["filter"] == [{"term": {TEXT_FIELD: "aaa"}}]


def test_three_character_fragment_is_one_trigram_term() -> None:
    assert _clauses(text_query("Q7a")) == [{"term": {TEXT_FIELD: "q7a"}}]


def test_short_fragment_is_a_wildcard_over_the_trigrams() -> None:
    assert _clauses(text_query("Ab")) == [{"wildcard": {TEXT_FIELD: {"value": "*ab*"}}}]


def test_wildcard_characters_in_a_short_fragment_are_literal() -> None:
    [clause] = _clauses(text_query("*?"))
    assert clause["wildcard"][TEXT_FIELD]["value"] == "*\\*\\?*"
    [clause] = _clauses(text_query("a\\"))
    assert clause["wildcard"][TEXT_FIELD]["value"] == "*a\\\\*"


def test_fragment_is_trimmed_and_loses_control_characters_before_choosing_the_path() -> None:
    assert _clauses(text_query("  a\x02b  ")) == [{"wildcard": {TEXT_FIELD: {"value": "*ab*"}}}]
    assert text_query(f"{VALUE_START}{VALUE_END}") == {"match_all": {}}


def test_members_also_search_pi_e_mails_but_only_in_their_datasets() -> None:
    members = {"terms": {"ownerGroup": ["g1"]}}
    anonymous, member = _clauses(text_query("ada@")), _clauses(text_query("ada@", members))
    assert len(anonymous) == 1
    assert member[0] == anonymous[0]
    assert member[1]["bool"]["filter"] == [members]
    [substring] = member[1]["bool"]["must"]
    assert substring["bool"]["must"] == [{"match_phrase": {MEMBER_TEXT_FIELD: "ada@"}}]


def test_free_text_holds_every_searchable_value_marked_and_e_mails_apart(
    make_dataset: Callable[..., Dataset],
) -> None:
    dataset = make_dataset(
        description="Silver behenate",
        keywords=["Si"],
        principalInvestigators=["ada@example.org", "Ada Lovelace"],
        scientificMetadata={"sample": {"name": "LaB6"}},
    )
    context = CatalogueContext(
        files=("img_00001.cbf",),
        proposals=({"proposalId": "DOOR-1", "title": "Strain", "pi_email": "bob@example.org"},),
    )
    derived = indexed_dataset(dataset, context).source[DERIVED]
    assert derived["text"] == [
        f"{VALUE_START}{value}{VALUE_END}"
        for value in (
            "scan_001",
            "Silver behenate",
            dataset.sourceFolder,
            "Si",
            "img_00001.cbf",
            "LaB6",
            "11012345",
            "DOOR-1",
            "Strain",
            "Ada Lovelace",
        )
    ]
    assert derived["memberText"] == [
        f"{VALUE_START}{e}{VALUE_END}" for e in ("ada@example.org", "bob@example.org")
    ]


def test_a_long_value_is_searchable_in_its_first_characters_only(
    make_dataset: Callable[..., Dataset],
) -> None:
    dataset = make_dataset(description="x" * (MAX_VALUE_CHARS + 10))
    [_, description, *_] = indexed_dataset(dataset).source[DERIVED]["text"]
    assert len(description) == MAX_VALUE_CHARS + 2


# --- the mapping ---------------------------------------------------------------------------------


def test_mapping_never_grows_from_documents() -> None:
    assert MAPPINGS["dynamic"] is False
    assert MAPPINGS["properties"]["scientificMetadata"] == {"type": "object", "enabled": False}
    assert MAPPINGS["properties"][METADATA_PAIRS]["type"] == "nested"


def test_free_text_fields_are_trigrams_with_positions_apart_per_value() -> None:
    derived = MAPPINGS["properties"][DERIVED]["properties"]
    for name in ("text", "memberText"):
        assert derived[name]["analyzer"] == "trigram"
        assert derived[name]["position_increment_gap"] >= 2
    tokenizer = index_body(None)["settings"]["analysis"]["tokenizer"]["trigram"]
    assert (tokenizer["min_gram"], tokenizer["max_gram"], tokenizer["token_chars"]) == (3, 3, [])


def test_index_is_versioned_behind_its_alias_and_records_its_mapping_revision() -> None:
    body = index_body("datasets")
    assert concrete_index("datasets") == "datasets-v1"
    assert body["aliases"] == {"datasets": {"is_write_index": True}}
    assert body["mappings"]["_meta"] == {"mapping_revision": MAPPING_REVISION}
