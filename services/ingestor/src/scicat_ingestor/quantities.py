"""SI values next to every quantity in scientific metadata, as SciCat's backend adds them.

Every `{value, unit}` and PSI's short `{v, u}`, at any depth (inside objects and lists), gets
`valueSI`/`unitSI` from `scicat_schemas.units` — the one conversion the indexer also uses to
convert query units, so stored and queried SI values agree to the letter. A two-element list is a
`[low, high]` range. A unit pint does not know, or a value that is not a number, never fails the
event (SciCat backend-v3 #419): the quantity is kept as sent, without `valueSI`/`unitSI`, and a
`MetadataIssue` names it so a person can fix the producer.

Annotation is recomputed from the merged metadata whenever an event changes the metadata, so a
stale `valueSI` cannot survive a new `value`, and re-applying it to its own output changes
nothing; metadata an event repeats exactly keeps its stored annotation (`domain`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from scicat_schemas.units import SIQuantity, UnitError, to_si

SI_KEYS = ("valueSI", "unitSI")
UNIT_SOURCE = "units"


@dataclass(frozen=True, order=True)
class MetadataIssue:
    """One problem with one metadata key; never fatal, stored on the dataset for people to see.

    `key` is the dotted path in `scientificMetadata`; `source` says which step found it
    (`units`, `nexus`).
    """

    key: str
    source: str
    problem: str

    def as_document(self) -> dict[str, str]:
        return {"key": self.key, "source": self.source, "problem": self.problem}

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> MetadataIssue:
        return cls(
            key=str(document.get("key", "")),
            source=str(document.get("source", "")),
            problem=str(document.get("problem", "")),
        )


def stored_unit_issues(stored: Sequence[Mapping[str, Any]]) -> list[MetadataIssue]:
    """The unit issues among a dataset's stored issues (still true of metadata left as it is)."""
    return [
        issue for issue in map(MetadataIssue.from_document, stored) if issue.source == UNIT_SOURCE
    ]


def dataset_issues(
    stored: Sequence[Mapping[str, Any]],
    unit_issues: list[MetadataIssue],
    found: Sequence[MetadataIssue],
) -> list[dict[str, str]]:
    """A dataset's issues after a change: unit issues are recomputed from the whole metadata
    (`unit_issues`); others (NeXus) accumulate, with those `found` now, until fixed."""
    kept = [
        issue for issue in map(MetadataIssue.from_document, stored) if issue.source != UNIT_SOURCE
    ]
    unique = dict.fromkeys([*kept, *found, *unit_issues])
    return [issue.as_document() for issue in unique]


def quantity_parts(value: object) -> tuple[Any, Any] | None:
    """`(value, unit)` of a `{value, unit}` or `{v, u}` object, else None."""
    if type(value) is not dict and not isinstance(value, Mapping):  # dicts skip the ABC check
        return None
    if "value" in value and "unit" in value:
        return value["value"], value["unit"]
    if "v" in value and "u" in value:
        return value["v"], value["u"]
    return None


def with_si_units(metadata: Mapping[str, Any]) -> tuple[dict[str, Any], list[MetadataIssue]]:
    """`metadata` with `valueSI`/`unitSI` on every convertible quantity, and what was not."""
    issues: list[MetadataIssue] = []
    annotated = _annotate_mapping(metadata, "", issues)
    return annotated, issues


def _annotate(value: Any, path: str, issues: list[MetadataIssue]) -> Any:
    if isinstance(value, Mapping):
        parts = quantity_parts(value)
        if parts is not None:
            return _annotated_quantity(value, parts, path, issues)
        return _annotate_mapping(value, path, issues)
    if isinstance(value, list):
        return [_annotate(item, f"{path}[{index}]", issues) for index, item in enumerate(value)]
    return value


def _annotate_mapping(
    mapping: Mapping[str, Any], path: str, issues: list[MetadataIssue]
) -> dict[str, Any]:
    return {
        key: _annotate(item, f"{path}.{key}" if path else key, issues)
        for key, item in mapping.items()
    }


def _annotated_quantity(
    quantity: Mapping[str, Any],
    parts: tuple[Any, Any],
    path: str,
    issues: list[MetadataIssue],
) -> dict[str, Any]:
    plain = {key: item for key, item in quantity.items() if key not in SI_KEYS}
    number, unit = parts
    if not isinstance(unit, str):
        issues.append(MetadataIssue(path, UNIT_SOURCE, f"unit {unit!r} is not a string"))
        return plain
    if unit.strip() == "":
        return plain
    try:
        si = _cached_si(_hashable(number), unit)
    except UnitError as error:
        issues.append(
            MetadataIssue(path, UNIT_SOURCE, f"no SI value: {error}; the quantity is kept as sent")
        )
        return plain
    return plain | {"valueSI": si.value, "unitSI": si.unit}


@lru_cache(maxsize=4096)
def _cached_si(number: Any, unit: str) -> SIQuantity:
    """`to_si`, remembered: a run repeats the same few quantities in every event, and the whole
    metadata is re-annotated on each change, so most conversions are repeats (pint is ~100 µs)."""
    return to_si(_plain(number), unit)


def _hashable(number: Any) -> Any:
    """A cache key that keeps `True`, `1` and `1.0` apart (they hash alike)."""
    if isinstance(number, list):
        return tuple(_hashable(item) for item in number)
    if isinstance(number, bool | int | float | str) or number is None:
        return _Keyed(type(number).__name__, number)
    raise UnitError(f"{number!r} is not a number")


@dataclass(frozen=True)
class _Keyed:
    kind: str
    value: Any


def _plain(number: Any) -> Any:
    if isinstance(number, tuple):
        return [_plain(item) for item in number]
    return number.value if isinstance(number, _Keyed) else number
