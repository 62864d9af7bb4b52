"""Physical units: one registry and one SI conversion for every service.

The ingestor stores `valueSI`/`unitSI` next to each `{value, unit}`; the indexer converts the
unit of a query to the same SI form. Both must agree to the letter on the SI unit string and on
the numbers, so the conversion lives here, once, on pint.

Facility spellings are accepted (`Å`, `Angstrom`, `eV`/`keV`, `deg`/`degrees`/`°`, `°C`, `mbar`,
`counts`/`cts`). Values keep full double precision; only float noise past 15 significant digits
(e.g. `45 nm` → `4.5000000000000006e-08 m`) is removed, so equal quantities compare equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import pint

SIGNIFICANT_DIGITS = 15

_ALIASES = {
    "Å": "angstrom",
    "Angstrom": "angstrom",
    "angstroms": "angstrom",
    "A°": "angstrom",
    "°": "degree",
    "deg": "degree",
    "degrees": "degree",
    "°C": "degC",
    "℃": "degC",
    "celsius": "degC",
    "Celsius": "degC",
    "counts": "count",
    "cts": "count",
    "cps": "count / second",
    "sec": "second",
    "secs": "second",
    "µm": "micrometer",
    "μm": "micrometer",
    "um": "micrometer",
}


class UnitError(ValueError):
    """A unit pint does not know, or a value that cannot carry a unit."""


@dataclass(frozen=True)
class SIQuantity:
    """A value in SI base units; `value` is a number or a `[low, high]` range."""

    value: float | list[float]
    unit: str


@cache
def registry() -> pint.UnitRegistry:  # type: ignore[type-arg]
    ureg: pint.UnitRegistry = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)  # type: ignore[type-arg]
    return ureg


def canonical(unit: str) -> str:
    """The spelling pint understands for a facility spelling (`Å` → `angstrom`)."""
    text = unit.strip()
    return _ALIASES.get(text, text)


def _parse(unit: str) -> Any:
    name = canonical(unit)
    if not name:
        raise UnitError("empty unit")
    try:
        return registry().parse_units(name)
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError, AttributeError) as e:
        raise UnitError(f"unknown unit {unit!r}") from e
    except Exception as e:  # pint raises assorted errors on malformed expressions
        raise UnitError(f"unknown unit {unit!r}: {e}") from e


def _round(number: float) -> float:
    if number == 0 or not math.isfinite(number):
        return number
    return float(f"{number:.{SIGNIFICANT_DIGITS}g}")


def _si_number(number: Any, unit: Any) -> tuple[float, str]:
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise UnitError(f"{number!r} is not a number")
    quantity = registry().Quantity(float(number), unit).to_base_units()
    return _round(float(quantity.magnitude)), f"{quantity.units:~C}"


def to_si(value: Any, unit: str) -> SIQuantity:
    """`value` in `unit` as SI base units; a two-element list is a range.

    Raises `UnitError` for an unknown unit, a non-numeric value or a list that is not a range.
    """
    parsed = _parse(unit)
    if isinstance(value, list):
        if len(value) != 2:
            raise UnitError(f"a list of {len(value)} values is not a [low, high] range")
        (low, si_unit), (high, _) = (_si_number(v, parsed) for v in value)
        return SIQuantity([low, high], si_unit)
    number, si_unit = _si_number(value, parsed)
    return SIQuantity(number, si_unit)


def si_unit(unit: str) -> str:
    """The SI base unit string `to_si` would give for `unit`."""
    return to_si(1.0, unit).unit


def compatible(unit_a: str, unit_b: str) -> bool:
    """Whether two units measure the same dimension (keV and J yes, keV and K no)."""
    return bool(_parse(unit_a).dimensionality == _parse(unit_b).dimensionality)


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """`value` from one unit to another of the same dimension; `UnitError` otherwise."""
    source, target = _parse(from_unit), _parse(to_unit)
    if source.dimensionality != target.dimensionality:
        raise UnitError(f"cannot convert {from_unit!r} to {to_unit!r}: different dimensions")
    return _round(float(registry().Quantity(float(value), source).to(target).magnitude))
