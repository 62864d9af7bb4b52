"""Merging and checking scientific metadata."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scicat_ingestor.scientific_metadata import (
    UnstorableMetadata,
    check_storable,
    merge_changes_nothing,
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


def _same_json(a: Any, b: Any) -> bool:
    """Equal as JSON: `1`, `1.0` and `true` differ, at any depth."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# Few keys and few values, so that what is sent often repeats what is stored.
_scalars = st.sampled_from([None, True, False, 0, 1, 1.0, 0.5, "", "keV", "K"])
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "value", "unit", "v", "u"]), inner, max_size=3)
    ),
    max_leaves=8,
)
_metadata = st.dictionaries(st.sampled_from(["a", "b", "value", "c"]), _json, max_size=3)


def _twin(value: Any) -> Any:
    """`value` with its numbers and booleans of another JSON type (equal in Python)."""
    if isinstance(value, dict):
        return {key: _twin(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_twin(item) for item in value]
    if type(value) is bool:
        return int(value)
    if type(value) is int:
        return float(value)
    if type(value) is float and value in (0.0, 1.0):
        return bool(value)
    return value


@st.composite
def _sent_after(draw: st.DrawFn, stored: dict[str, Any]) -> dict[str, Any]:
    """What a producer sends next: each stored key again, as a JSON twin, or changed, or not."""
    sent: dict[str, Any] = {}
    for key, value in stored.items():
        how = draw(st.sampled_from(["same", "twin", "other", "absent"]))
        if how == "same":
            sent[key] = value
        elif how == "twin":
            sent[key] = _twin(value)
        elif how == "other":
            sent[key] = draw(_json)
    return sent | draw(_metadata)


@settings(max_examples=300, deadline=None)
@given(st.data(), _metadata)
def test_merge_changes_nothing_exactly_when_merging_changes_nothing(data, current) -> None:
    """The shortcut a repeating event takes is the merge's own answer, value by value, at the
    top and inside a group."""
    incoming = data.draw(_sent_after(current))
    for stored, sent in ((current, incoming), ({"g": current}, {"g": incoming})):
        unchanged = _same_json(merge_scientific_metadata(stored, sent), stored)
        assert merge_changes_nothing(stored, sent) is unchanged
