"""One SI conversion for stored metadata and for queries."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scicat_schemas.units import (
    UnitError,
    _round,
    canonical,
    compatible,
    convert,
    registry,
    si_unit,
    to_si,
)


@pytest.mark.parametrize(
    ("value", "unit", "si_value", "si"),
    [
        (18, "keV", 2.8839179412e-15, "kg*m**2/s**2"),
        (18000, "eV", 2.8839179412e-15, "kg*m**2/s**2"),
        (0.6888, "Å", 6.888e-11, "m"),
        (0.6888, "Angstrom", 6.888e-11, "m"),
        (25, "°C", 298.15, "K"),
        (45, "nm", 4.5e-08, "m"),
        (1e-6, "mbar", 1e-04, "kg/m/s**2"),
        (5, "counts", 5.0, "count"),
        (180, "deg", 3.14159265358979, "rad"),
    ],
)
def test_facility_units_become_si_base_units(
    value: float, unit: str, si_value: float, si: str
) -> None:
    quantity = to_si(value, unit)
    assert quantity.value == pytest.approx(si_value, rel=1e-14)
    assert quantity.unit == si


def test_equal_quantities_in_different_units_are_equal_in_si() -> None:
    assert to_si(5.5, "keV") == to_si(5500, "eV")
    assert to_si(45, "nm").value == 4.5e-08


def test_a_two_element_list_is_a_range() -> None:
    assert to_si([300, 773], "K").value == [300.0, 773.0]
    with pytest.raises(UnitError, match="range"):
        to_si([1, 2, 3], "K")


@pytest.mark.parametrize("unit", ["blorps", "Ohmm", "", "K**"])
def test_unknown_units_raise_unit_error(unit: str) -> None:
    with pytest.raises(UnitError):
        to_si(1, unit)


def test_non_numbers_raise_unit_error() -> None:
    with pytest.raises(UnitError):
        to_si("hot", "K")
    with pytest.raises(UnitError):
        to_si(True, "K")


def test_compatibility_and_conversion() -> None:
    assert compatible("keV", "J")
    assert not compatible("keV", "K")
    assert convert(5, "keV", "eV") == 5000.0
    with pytest.raises(UnitError, match="different dimensions"):
        convert(5, "keV", "K")
    assert si_unit("keV") == si_unit("J")


FACILITY_UNITS = [
    "keV",
    "eV",
    "MeV",
    "Å",
    "nm",
    "mm",
    "um",
    "deg",
    "°",
    "mrad",
    "mbar",
    "Pa",
    "bar",
    "s",
    "ms",
    "counts",
    "cps",
    "K",
    "°C",
    "degF",
    "mA",
    "T",
    "Hz",
    "kg/m^3",
    "mm/s",
    "1/nm",
]


def _pint_reference(value: float, unit: str) -> tuple[float, str]:
    """The conversion as pint computes it on every call, without the remembered factors."""
    quantity = registry().Quantity(value, registry().parse_units(canonical(unit)))
    base = quantity.to_base_units()
    return _round(float(base.magnitude)), f"{base.units:~C}"


@settings(max_examples=300, deadline=None)
@given(
    value=st.floats(allow_nan=False, allow_infinity=False, width=64)
    | st.integers(-(10**12), 10**12),
    unit=st.sampled_from(FACILITY_UNITS),
)
def test_remembered_conversion_gives_pints_result_bit_for_bit(value: float, unit: str) -> None:
    converted = to_si(value, unit)

    assert (converted.value, converted.unit) == _pint_reference(float(value), unit)


def test_unknown_unit_is_refused_every_time_not_remembered_as_valid() -> None:
    for _ in range(2):
        with pytest.raises(UnitError, match="zorkmid"):
            to_si(1.0, "zorkmid")
