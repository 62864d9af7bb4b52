"""Scientific metadata: checking what producers send and merging it into a dataset.

Metadata is any JSON object. A leaf is a plain value or a quantity, an object with a `value` key
(`{"value": 3.5, "unit": "mm"}`); a quantity is replaced as a whole, never merged key by key, so
a new value never keeps a stale unit. Unit normalisation (`valueSI`/`unitSI`, `quantities`) is a
later step on top of this merge, not part of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class UnstorableMetadata(ValueError):
    """Metadata the catalogue cannot store or query; the message names the offending key."""


def is_quantity(value: object) -> bool:
    """A `{value, unit}` (or short `{v, u}`) object: a leaf for merging, though a JSON object."""
    return isinstance(value, Mapping) and ("value" in value or ("v" in value and "u" in value))


def merge_scientific_metadata(
    current: Mapping[str, Any], incoming: Mapping[str, Any]
) -> dict[str, Any]:
    """`current` deep-merged with `incoming`; incoming wins on conflicts; inputs are not changed.

    Objects merge key by key; quantities, lists and plain values are replaced.
    """
    merged = dict(current)
    for key, value in incoming.items():
        old = merged.get(key)
        if _is_group(old) and _is_group(value):
            merged[key] = merge_scientific_metadata(old, value)
        else:
            merged[key] = value
    return merged


def merge_changes_nothing(
    current: Mapping[str, Any], incoming: Mapping[str, Any], *, ignored: tuple[str, ...] = ()
) -> bool:
    """Whether merging `incoming` into `current` leaves it as it is: every key of `incoming` is
    in `current` with the same value (of the same JSON type: `1`, `1.0` and `true` differ).

    `ignored` keys of a quantity are not compared (the SI values a later step derives from it).
    Lets an event that repeats its run's metadata, as detectors do on every file, skip the merge
    and the SI annotation of the whole metadata. Anything but plain JSON (dicts, lists, scalars)
    answers "no", which only costs the full computation.
    """
    for key, value in incoming.items():
        if key not in current:
            return False
        old = current[key]
        kind = type(value)
        if kind is not dict:
            if old is value:
                continue
            if type(old) is not kind or (
                old != value if kind is not list else not _same_json(old, value)
            ):
                return False
        elif type(old) is not dict:
            return False
        elif "value" in value or ("v" in value and "u" in value):  # `is_quantity`, for a dict
            if not _same_quantity(old, value, ignored):
                return False
        elif "value" in old or ("v" in old and "u" in old):  # a quantity becomes a group
            return False
        elif not merge_changes_nothing(old, value, ignored=ignored):
            return False
    return True


def _same_quantity(old: dict[str, Any], new: dict[str, Any], ignored: tuple[str, ...]) -> bool:
    """Runs for every quantity of every event that repeats its run's metadata: plain loops, no
    generators, and scalars (a quantity's usual parts) compared inline, without `_same_json`'s
    call (together half the time of this check)."""
    compared = 0
    for key, value in new.items():
        if key in ignored:
            continue
        compared += 1
        if key not in old:
            return False
        stored = old[key]
        if stored is value:
            continue
        kind = type(value)
        if type(stored) is not kind:
            return False
        if kind is dict or kind is list:
            if not _same_json(stored, value):
                return False
        elif stored != value:
            return False
    kept = len(old)
    for key in ignored:
        if key in old:
            kept -= 1
    return kept == compared


def _same_json(a: object, b: object) -> bool:
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is not dict and kind is not list:
        return a == b
    if kind is dict:
        assert isinstance(a, dict) and isinstance(b, dict)
        return a.keys() == b.keys() and all(_same_json(a[key], b[key]) for key in a)
    if kind is list:
        assert isinstance(a, list) and isinstance(b, list)
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def check_storable(metadata: Mapping[str, Any], *, where: str = "metadata") -> None:
    """Raise `UnstorableMetadata` for keys MongoDB cannot store or SciCat cannot query.

    Refused: keys starting with `$` (MongoDB operators), containing `.` (SciCat queries address
    metadata by dotted path, so `a.b` could never be found) or NUL, empty keys, and integers
    outside BSON's 64 bits. Checking here turns what would be an endless store retry into a
    dead letter that names the key.
    """
    _check_value(metadata, where)


def _is_group(value: object) -> TypeGuard[Mapping[str, Any]]:
    return isinstance(value, Mapping) and not is_quantity(value)


_LEAVES = (str, float, bool, type(None))
"""Values with nothing to check: not descended into (most of any metadata)."""


def _check_value(value: object, where: str) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_key(key, where)
            if type(item) not in _LEAVES:
                _check_value(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if type(item) not in _LEAVES:
                _check_value(item, f"{where}[{index}]")
    elif isinstance(value, int) and not isinstance(value, bool):
        if not INT64_MIN <= value <= INT64_MAX:
            raise UnstorableMetadata(
                f"{where} is {value}, outside the 64-bit integers the catalogue stores; "
                "send it as a float or a string"
            )


def _check_key(key: object, where: str) -> None:
    if not isinstance(key, str) or not key:
        raise UnstorableMetadata(f"{where} has an empty or non-string key {key!r}")
    if key.startswith("$"):
        raise UnstorableMetadata(f"{where} has key {key!r}: keys must not start with '$'")
    if "." in key:
        raise UnstorableMetadata(
            f"{where} has key {key!r}: keys must not contain '.'; nest objects instead"
        )
    if "\x00" in key:
        raise UnstorableMetadata(f"{where} has key {key!r}: keys must not contain NUL")
