"""Physical units: one registry and one SI conversion for every service.

The ingestor stores `valueSI`/`unitSI` next to each `{value, unit}`; the indexer converts the
unit of a query to the same SI form. Both must agree to the letter on the SI unit string and on
the numbers, so the conversion lives here, once, on pint.

Facility spellings are accepted (`Å`, `Angstrom`, `eV`/`keV`, `deg`/`degrees`/`°`, `°C`, `mbar`,
`counts`/`cts`). Values keep full double precision; only float noise past 15 significant digits
(e.g. `45 nm` → `4.5000000000000006e-08 m`) is removed, so equal quantities compare equal.

pint costs 30–150 µs per conversion, mostly parsing the unit and finding its base units. Both
are remembered per unit string (`_conversion`): a multiplicative unit converts by its factor to
base units, which is exactly the multiplication pint itself performs (`value * factor`), so
results are bit for bit pint's; offset units (`°C`) are still converted by pint each time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, lru_cache
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


@lru_cache(maxsize=1024)
def _parse(unit: str) -> Any:
    """The pint unit of a spelling; remembered (units are immutable), failures are not."""
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


@dataclass(frozen=True)
class _Conversion:
    """How values of one unit become SI: `factor` for a multiplicative unit, else pint."""

    unit: Any
    si_unit: str
    factor: float | None


@lru_cache(maxsize=1024)
def _conversion(unit: str) -> _Conversion:
    parsed = _parse(unit)
    one = registry().Quantity(1.0, parsed)
    base = one.to_base_units()
    factor = float(base.magnitude) if one._is_multiplicative else None
    return _Conversion(parsed, f"{base.units:~C}", factor)


def _si_number(number: Any, conversion: _Conversion) -> float:
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise UnitError(f"{number!r} is not a number")
    if conversion.factor is not None:
        return _round(float(number) * conversion.factor)
    quantity = registry().Quantity(float(number), conversion.unit).to_base_units()
    return _round(float(quantity.magnitude))


def to_si(value: Any, unit: str) -> SIQuantity:
    """`value` in `unit` as SI base units; a two-element list is a range.

    Raises `UnitError` for an unknown unit, a non-numeric value or a list that is not a range.
    """
    conversion = _conversion(unit)
    if isinstance(value, list):
        if len(value) != 2:
            raise UnitError(f"a list of {len(value)} values is not a [low, high] range")
        low, high = (_si_number(v, conversion) for v in value)
        return SIQuantity([low, high], conversion.si_unit)
    return SIQuantity(_si_number(value, conversion), conversion.si_unit)


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
