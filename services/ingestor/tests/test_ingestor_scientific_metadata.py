"""Merging and checking scientific metadata."""

from __future__ import annotations

import pytest

from scicat_ingestor.scientific_metadata import (
    UnstorableMetadata,
    check_storable,
    merge_scientific_metadata,
)


def test_merge_recurses_into_groups_and_incoming_wins() -> None:
    current = {"sample": {"name": "Si", "mass": 1}, "mode": "fly"}
    incoming = {"sample": {"mass": 2, "holder": "H1"}, "mode": "step"}

    merged = merge_scientific_metadata(current, incoming)

    assert merged == {"sample": {"name": "Si", "mass": 2, "holder": "H1"}, "mode": "step"}
    assert current == {"sample": {"name": "Si", "mass": 1}, "mode": "fly"}


def test_quantity_replaces_a_quantity_whole_so_no_stale_unit_remains() -> None:
    current = {"temperature": {"value": 300, "unit": "K", "valueSI": 300, "unitSI": "K"}}

    merged = merge_scientific_metadata(current, {"temperature": {"value": 25, "unit": "degC"}})

    assert merged == {"temperature": {"value": 25, "unit": "degC"}}


def test_lists_and_type_changes_are_replaced_not_merged() -> None:
    current = {"angles": [1, 2, 3], "motor": {"x": 1}}

    merged = merge_scientific_metadata(current, {"angles": [4], "motor": 5})

    assert merged == {"angles": [4], "motor": 5}


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        ({"$set": 1}, "must not start with '$'"),
        ({"a": {"b.c": 1}}, "metadata.a has key 'b.c'"),
        ({"a": [{"ok": 1}, {"": 2}]}, "metadata.a[1]"),
        ({"a\x00": 1}, "NUL"),
        ({"big": -(2**63) - 1}, "64-bit"),
    ],
)
def test_unstorable_metadata_is_refused_naming_the_key(metadata, fragment) -> None:
    with pytest.raises(UnstorableMetadata) as refused:
        check_storable(metadata)

    assert fragment in str(refused.value)


def test_ordinary_metadata_is_storable() -> None:
    check_storable(
        {"nexus/entry": {"value": 2**63 - 1, "unit": "counts"}, "flags": [True, None, 1.5]}
    )
