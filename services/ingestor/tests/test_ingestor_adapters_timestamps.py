"""Epoch numbers in s, ms and ns become aware UTC datetimes, exactly, at the unit boundaries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scicat_ingestor.adapters import from_epoch, infer_epoch_unit

MOMENT = datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "unit"),
    [
        (1772359200.123456, "s"),
        (1772359200123, "ms"),
        (1772359200123456789, "ns"),
    ],
)
def test_each_unit_gives_the_same_aware_moment(value, unit) -> None:
    moment = from_epoch(value, unit)

    assert moment.tzinfo is UTC
    expected = MOMENT if unit != "ms" else MOMENT.replace(microsecond=123000)
    assert moment == expected


def test_integer_nanoseconds_keep_their_microseconds_exactly() -> None:
    assert from_epoch(1_000_001_999, "ns") == datetime(1970, 1, 1, 0, 0, 1, 1, tzinfo=UTC)


def test_zero_is_the_epoch_and_negative_values_are_before_it() -> None:
    assert from_epoch(0, "ns") == datetime(1970, 1, 1, tzinfo=UTC)
    assert from_epoch(-1, "s") == datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize("value", [True, float("nan"), float("inf"), 10**20, "1772359200"])
def test_values_that_are_no_time_raise_a_readable_error(value) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        from_epoch(value, "s")


@pytest.mark.parametrize(
    ("value", "unit"),
    [
        (0, "s"),
        (1772359200, "s"),
        (99_999_999_999, "s"),
        (100_000_000_000, "ms"),
        (1772359200123, "ms"),
        (99_999_999_999_999, "ms"),
        (100_000_000_000_000, "ns"),
        (1772359200123456789, "ns"),
    ],
)
def test_inferred_unit_switches_at_1e11_and_1e14(value, unit) -> None:
    assert infer_epoch_unit(value) == unit
