"""SI values on every quantity in scientific metadata; unknown units flagged, never fatal."""

from __future__ import annotations

from datetime import UTC, datetime

from scicat_ingestor.domain import apply_event
from scicat_ingestor.quantities import MetadataIssue, with_si_units

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


def test_quantities_at_any_depth_get_si_values() -> None:
    annotated, issues = with_si_units(
        {
            "energy": {"value": 12.0, "unit": "keV"},
            "sample": {"temperature": {"value": 300, "unit": "K"}, "name": "LaB6"},
            "slits": [{"value": 2, "unit": "mm"}, {"value": 3, "unit": "mm"}],
        }
    )

    assert issues == []
    assert annotated["energy"]["valueSI"] == 1.9226119608e-15
    assert annotated["energy"]["unitSI"] == "kg*m**2/s**2"
    assert annotated["sample"]["temperature"] | {} == {
        "value": 300,
        "unit": "K",
        "valueSI": 300.0,
        "unitSI": "K",
    }
    assert annotated["sample"]["name"] == "LaB6"
    assert [s["valueSI"] for s in annotated["slits"]] == [0.002, 0.003]


def test_short_form_and_facility_units_are_converted() -> None:
    annotated, issues = with_si_units(
        {
            "wavelength": {"v": 1.5406, "u": "Å"},
            "angle": {"value": 90, "unit": "deg"},
            "pressure": {"value": 1, "unit": "mbar"},
        }
    )

    assert issues == []
    assert annotated["wavelength"] == {
        "v": 1.5406,
        "u": "Å",
        "valueSI": 1.5406e-10,
        "unitSI": "m",
    }
    assert annotated["angle"]["valueSI"] == 1.5707963267949
    assert annotated["pressure"] == {
        "value": 1,
        "unit": "mbar",
        "valueSI": 100.0,
        "unitSI": "kg/m/s**2",
    }


def test_two_element_value_is_a_range() -> None:
    annotated, _ = with_si_units({"scan": {"value": [10, 20], "unit": "mm"}})

    assert annotated["scan"]["valueSI"] == [0.01, 0.02]
    assert annotated["scan"]["unitSI"] == "m"


def test_unknown_unit_is_kept_as_sent_and_flagged() -> None:
    metadata = {"flux": {"value": 3, "unit": "bananas", "valueSI": 1, "unitSI": "m"}}

    annotated, issues = with_si_units(metadata)

    assert annotated == {"flux": {"value": 3, "unit": "bananas"}}
    [issue] = issues
    assert (issue.key, issue.source) == ("flux", "units")
    assert "bananas" in issue.problem


def test_non_numeric_value_and_long_list_are_flagged_not_fatal() -> None:
    annotated, issues = with_si_units(
        {"a": {"value": "high", "unit": "K"}, "b": {"value": [1, 2, 3], "unit": "K"}}
    )

    assert annotated == {
        "a": {"value": "high", "unit": "K"},
        "b": {"value": [1, 2, 3], "unit": "K"},
    }
    assert [i.key for i in issues] == ["a", "b"]


def test_annotating_its_own_output_changes_nothing() -> None:
    once, _ = with_si_units({"e": {"value": 45, "unit": "nm"}})
    twice, _ = with_si_units(once)

    assert twice == once
    assert once["e"]["valueSI"] == 4.5e-08


def test_dataset_records_unit_issues_and_drops_them_once_fixed(policy, acquisitions) -> None:
    bad = apply_event(
        acquisitions.file_closed(metadata={"flux": {"value": 3, "unit": "bananas"}}),
        None,
        policy=policy,
        now=NOW,
    )
    assert bad is not None
    assert bad.dataset.scientificMetadataIssues == [
        MetadataIssue(
            "flux", "units", bad.dataset.scientificMetadataIssues[0]["problem"]
        ).as_document()
    ]

    fixed = apply_event(
        acquisitions.run_stopped(metadata={"flux": {"value": 3, "unit": "1/s"}}),
        bad,
        policy=policy,
        now=NOW,
    )

    assert fixed is not None
    assert fixed.dataset.scientificMetadataIssues == []
    assert fixed.dataset.scientificMetadata["flux"]["valueSI"] == 3.0


def test_changed_value_never_keeps_a_stale_si_value(policy, acquisitions) -> None:
    first = apply_event(
        acquisitions.run_started(metadata={"energy": {"value": 1, "unit": "keV"}}),
        None,
        policy=policy,
        now=NOW,
    )
    second = apply_event(
        acquisitions.file_closed(metadata={"energy": {"value": 2000, "unit": "eV"}}),
        first,
        policy=policy,
        now=NOW,
    )

    assert second is not None
    assert second.dataset.scientificMetadata["energy"]["valueSI"] == 3.20435326800e-16
