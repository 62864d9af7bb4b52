"""One SI conversion for stored metadata and for queries."""

from __future__ import annotations

import pytest

from scicat_schemas.units import UnitError, compatible, convert, si_unit, to_si


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
