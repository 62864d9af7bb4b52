"""Conditions on scientific metadata and the nested OpenSearch clause each becomes. Pure.

Conditions compare against the flattened metadata pairs (`key` = dotted path). With a unit, the
value is converted to SI (`scicat_schemas.units`, the same conversion the ingestor and indexer use
for stored values) and compared with `numberSI` in that SI unit, so `energy > 5 keV` finds a
dataset stored as `5500 eV`. A key may end in `.value` or not (SciCat #138): both name the same
pair. Used by the dataset search and by the PaNOSC `parameters` filter.
"""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from scicat_indexer.freetext import escape_wildcard
from scicat_indexer.mapping import METADATA_PAIRS
from scicat_schemas.units import UnitError, to_si

EQUAL_TOLERANCE: Final = 1e-9
"""Relative tolerance of `eq` on numbers: SI conversion may differ in the last bits."""


class QueryError(ValueError):
    """A request that cannot become a query (unknown unit, bad cursor …): a 400 for the caller."""


class Relation(StrEnum):
    EQUAL = "eq"
    CONTAINS = "contains"
    LESS = "lt"
    LESS_OR_EQUAL = "lte"
    GREATER = "gt"
    GREATER_OR_EQUAL = "gte"
    RANGE = "range"
    EXISTS = "exists"


Scalar = str | float | int | bool


class Condition(BaseModel):
    """One condition on a scientific metadata key."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(
        min_length=1,
        max_length=1024,
        description="Dotted path of the metadata key, e.g. `sample.temperature`; a trailing "
        "`.value` is the same key.",
    )
    relation: Relation = Field(default=Relation.EQUAL, description="How to compare.")
    value: Scalar | list[float] | None = Field(
        default=None,
        description="Number, text or boolean; `[low, high]` for `range`; none for `exists`.",
    )
    unit: str | None = Field(
        default=None, description="Unit of `value`; values stored in any compatible unit match."
    )

    @property
    def pair_key(self) -> str:
        return self.key.removesuffix(".value")


_CONDITION = re.compile(r"^\s*(?P<key>[^<>=~]+?)\s*(?P<op>>=|<=|>|<|=|~)\s*(?P<rest>.*?)\s*$")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_QUANTITY = re.compile(rf"^(?P<number>{_NUMBER})\s*(?P<unit>.*)$")
_RANGE = re.compile(rf"^(?P<low>{_NUMBER})\s*\.\.\s*(?P<high>{_NUMBER})\s*(?P<unit>.*)$")
_OPERATORS: Final = {
    ">=": Relation.GREATER_OR_EQUAL,
    "<=": Relation.LESS_OR_EQUAL,
    ">": Relation.GREATER,
    "<": Relation.LESS,
    "=": Relation.EQUAL,
    "~": Relation.CONTAINS,
}


def parse_condition(text: str) -> Condition:
    """`energy>5keV`, `energy>=5 keV`, `energy=5..6 keV` (range), `sample.name=LaB6`,
    `sample.name~lab` (contains), `sample.temperature` alone (exists)."""
    match = _CONDITION.match(text)
    if match is None:
        key = text.strip()
        if not key or any(c in key for c in "<>=~"):
            raise QueryError(f"condition {text!r} is not `key`, `key<op>value[unit]` or `key~text`")
        return Condition(key=key, relation=Relation.EXISTS)
    key, op, rest = match["key"].strip(), match["op"], match["rest"]
    relation = _OPERATORS[op]
    if relation is Relation.CONTAINS:
        return Condition(key=key, relation=relation, value=rest)
    if relation is Relation.EQUAL and (span := _RANGE.match(rest)):
        return Condition(
            key=key,
            relation=Relation.RANGE,
            value=[float(span["low"]), float(span["high"])],
            unit=span["unit"] or None,
        )
    if quantity := _QUANTITY.match(rest):
        return Condition(
            key=key,
            relation=relation,
            value=float(quantity["number"]),
            unit=quantity["unit"] or None,
        )
    if relation is not Relation.EQUAL:
        raise QueryError(f"condition {text!r}: {op} needs a number, e.g. `{key}{op}5 keV`")
    return Condition(key=key, relation=relation, value=rest)


def condition_clause(condition: Condition) -> dict[str, Any]:
    """A nested query: one metadata pair with this key satisfies the condition."""
    field = f"{METADATA_PAIRS}."
    must: list[dict[str, Any]] = [{"term": {f"{field}key": condition.pair_key}}]
    relation, value = condition.relation, condition.value
    if relation is Relation.EXISTS:
        pass
    elif relation is Relation.CONTAINS:
        if value is None or isinstance(value, list) or str(value) == "":
            raise QueryError(f"condition on {condition.key!r}: contains needs a text value")
        pattern = f"*{escape_wildcard(str(value).lower())}*"
        must.append(
            {"wildcard": {f"{field}text.lower": {"value": pattern, "case_insensitive": True}}}
        )
    elif condition.unit is not None:
        number, si_unit = _si_value(condition)
        must.append({"term": {f"{field}unitSI": si_unit}})
        must.append(_compare(f"{field}numberSI", relation, number))
    elif isinstance(value, bool) or isinstance(value, str):
        if relation is not Relation.EQUAL:
            raise QueryError(
                f"condition on {condition.key!r}: {relation.value} needs a number, not {value!r}"
            )
        text = ("true" if value else "false") if isinstance(value, bool) else value.lower()
        must.append({"term": {f"{field}text.lower": text}})
    elif relation is Relation.EQUAL:
        # Without a unit the number is compared as stored, so equality is exact. (A window, as
        # unit-aware equality needs, hangs the embedded osmem 0.1.6 for some numbers, `3 ± 3e-9`
        # among them: the request times out and the server keeps spinning.)
        must.append({"term": {f"{field}number": _number_or_range(condition)}})
    else:
        must.append(_compare(f"{field}number", relation, _number_or_range(condition)))
    return {"nested": {"path": METADATA_PAIRS, "query": {"bool": {"filter": must}}}}


def _si_value(condition: Condition) -> tuple[float | list[float], str]:
    value = condition.value
    if isinstance(value, bool) or not isinstance(value, int | float | list):
        raise QueryError(f"condition on {condition.key!r}: a value with a unit must be a number")
    try:
        si = to_si(_number_or_range(condition), str(condition.unit))
    except UnitError as error:
        raise QueryError(f"condition on {condition.key!r}: {error}") from error
    return si.value, si.unit


def _number_or_range(condition: Condition) -> float | list[float]:
    value = condition.value
    if condition.relation is Relation.RANGE:
        if not isinstance(value, list) or len(value) != 2:
            raise QueryError(f"condition on {condition.key!r}: range needs [low, high]")
        return [float(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise QueryError(f"condition on {condition.key!r}: {condition.relation} needs a number")
    return float(value)


def _compare(field: str, relation: Relation, number: float | list[float]) -> dict[str, Any]:
    if relation is Relation.RANGE:
        assert isinstance(number, list)
        low, high = sorted(number)
        return {"range": {field: {"gte": low, "lte": high}}}
    assert isinstance(number, float)
    if relation is Relation.EQUAL:
        slack = abs(number) * EQUAL_TOLERANCE
        return {"range": {field: {"gte": number - slack, "lte": number + slack}}}
    return {"range": {field: {relation.value: number}}}


def stored_units_body(conditions: list[Condition], visible: dict[str, Any]) -> dict[str, Any]:
    """Which SI units the visible datasets hold each unit-bearing condition's key in.

    Lets the API answer 400 for `temperature > 5 keV` instead of silently matching nothing.
    """
    aggs = {
        f"k{i}": {
            "filter": {"term": {f"{METADATA_PAIRS}.key": c.pair_key}},
            "aggs": {"units": {"terms": {"field": f"{METADATA_PAIRS}.unitSI", "size": 10}}},
        }
        for i, c in enumerate(conditions)
    }
    return {
        "size": 0,
        "query": {"bool": {"filter": [visible]}},
        "aggs": {"pairs": {"nested": {"path": METADATA_PAIRS}, "aggs": aggs}},
    }


def check_units(conditions: list[Condition], aggregations: dict[str, Any]) -> None:
    """`QueryError` when a condition's unit measures another dimension than the stored values."""
    pairs = aggregations.get("pairs", {})
    for i, condition in enumerate(conditions):
        stored = [b["key"] for b in pairs.get(f"k{i}", {}).get("units", {}).get("buckets", [])]
        _, si_unit = _si_value(condition)
        if stored and si_unit not in stored:
            raise QueryError(
                f"condition on {condition.key!r}: unit {condition.unit!r} ({si_unit}) is not "
                f"compatible with the stored values, which are in {', '.join(stored)}"
            )
