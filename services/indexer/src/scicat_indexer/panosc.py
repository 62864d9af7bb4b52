"""The PaNOSC search API's filter language → OpenSearch, and datasets → PaNOSC models. Pure.

A PaNOSC portal (panosc-eu/search-api) sends LoopBack filters:
`{"where": {...}, "include": [{"relation": "parameters", "scope": {"where": {"and": [{"name":
"wavelength"}, {"value": {"between": [900, 1100]}}, {"unit": "nm"}]}}}], "limit": 10, "skip": 0}`.
As in the reference implementation, an `include` with a `scope.where` also restricts the parents
(a dataset without a matching parameter is not returned). Parameter conditions with a unit are
converted to SI and compared with the SI value of each stored parameter, whatever unit it was
stored in; returned parameter values are converted into the unit the portal asked for.

PaNOSC is public: only published datasets are ever searched (the caller adds that filter).
Unsupported operators are refused with a 400 naming them, never ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from scicat_indexer.conditions import Condition, QueryError, Relation, condition_clause
from scicat_indexer.domain import flatten_scientific_metadata
from scicat_indexer.freetext import escape_wildcard
from scicat_schemas.units import UnitError, convert

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000

_COMPARISONS: Final = {
    "gt": Relation.GREATER,
    "gte": Relation.GREATER_OR_EQUAL,
    "lt": Relation.LESS,
    "lte": Relation.LESS_OR_EQUAL,
    "between": Relation.RANGE,
}

DATASET_FIELDS: Final = {"pid": "pid", "title": "datasetName", "creationDate": "creationTime"}
DATASET_RELATIONS: Final = frozenset({"parameters", "techniques", "instrument", "documents"})


def page_of(filter_: Mapping[str, Any]) -> tuple[int, int]:
    """`(skip, limit)` of a filter, within bounds."""
    limit, skip = filter_.get("limit", DEFAULT_LIMIT), filter_.get("skip", 0)
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit must be an integer from 1 to {MAX_LIMIT}, not {limit!r}")
    if not isinstance(skip, int) or skip < 0:
        raise QueryError(f"skip must be a non-negative integer, not {skip!r}")
    return skip, limit


def includes(filter_: Mapping[str, Any], allowed: frozenset[str]) -> dict[str, Mapping[str, Any]]:
    """`relation → scope` of the filter's `include` list."""
    found: dict[str, Mapping[str, Any]] = {}
    for item in filter_.get("include", []) or []:
        relation = item.get("relation") if isinstance(item, Mapping) else item
        if relation not in allowed:
            raise QueryError(f"cannot include {relation!r}; this API includes {sorted(allowed)}")
        scope = item.get("scope", {}) if isinstance(item, Mapping) else {}
        found[str(relation)] = scope if isinstance(scope, Mapping) else {}
    return found


def where_clauses(where: Mapping[str, Any], fields: Mapping[str, str]) -> list[dict[str, Any]]:
    """A LoopBack `where` on the dataset's own fields as OpenSearch filter clauses."""
    clauses: list[dict[str, Any]] = []
    for key, value in where.items():
        if key == "and":
            clauses += [c for part in value for c in where_clauses(part, fields)]
        elif key == "or":
            alternatives = [{"bool": {"filter": where_clauses(part, fields)}} for part in value]
            clauses.append({"bool": {"should": alternatives, "minimum_should_match": 1}})
        elif key == "isPublic":
            if value is not True:
                clauses.append({"match_none": {}})
        elif key in fields:
            clauses.append(_field_clause(fields[key], key, value))
        else:
            raise QueryError(
                f"cannot filter on {key!r}; supported: {sorted([*fields, 'isPublic'])}"
            )
    return clauses


def _field_clause(field: str, name: str, value: Any) -> dict[str, Any]:
    target = f"{field}.lower" if field == "datasetName" else field
    if not isinstance(value, Mapping):
        return {
            "term": {
                target: value.lower()
                if isinstance(value, str) and field == "datasetName"
                else value
            }
        }
    ((operator, operand),) = value.items()
    if operator in ("like", "ilike"):
        if not isinstance(operand, str):
            raise QueryError(f"{operator} on {name!r} needs a text pattern, not {operand!r}")
        pattern = "*".join(escape_wildcard(chunk) for chunk in operand.split("%"))
        return {"wildcard": {target: {"value": pattern, "case_insensitive": operator == "ilike"}}}
    if operator == "between" and isinstance(operand, list) and len(operand) == 2:
        return {"range": {field: {"gte": operand[0], "lte": operand[1]}}}
    if operator in ("gt", "gte", "lt", "lte"):
        return {"range": {field: {operator: operand}}}
    if operator == "inq" and isinstance(operand, list):
        return {"terms": {target: operand}}
    raise QueryError(f"operator {operator!r} on {name!r} is not supported")


def matches(record: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    """A LoopBack `where` on a small in-memory record (Documents, Instruments)."""
    for key, value in where.items():
        if key == "and":
            if not all(matches(record, part) for part in value):
                return False
        elif key == "or":
            if not any(matches(record, part) for part in value):
                return False
        elif key not in record:
            raise QueryError(f"cannot filter on {key!r}; supported: {sorted(record)}")
        elif not _matches_value(record[key], value):
            return False
    return True


def _matches_value(actual: Any, expected: Any) -> bool:
    if not isinstance(expected, Mapping):
        return bool(actual == expected)
    ((operator, operand),) = expected.items()
    if operator in ("like", "ilike") and isinstance(operand, str):
        regex = ".*".join(re.escape(chunk) for chunk in operand.split("%"))
        flags = re.IGNORECASE if operator == "ilike" else 0
        return isinstance(actual, str) and re.fullmatch(regex, actual, flags) is not None
    if operator == "inq" and isinstance(operand, list):
        return actual in operand
    if operator == "neq":
        return bool(actual != operand)
    raise QueryError(f"operator {operator!r} is not supported here")


def parameter_conditions(scope: Mapping[str, Any]) -> list[Condition]:
    """The `parameters` scope: `and` of `{name}`, `{value: …}`, `{unit}` → one condition."""
    where = scope.get("where", {})
    if not where:
        return []
    parts = where.get("and", [where]) if isinstance(where, Mapping) else []
    terms: dict[str, Any] = {}
    for part in parts:
        if not isinstance(part, Mapping):
            raise QueryError("parameters where must be an object or an `and` list of objects")
        terms.update(part)
    name, value, unit = terms.get("name"), terms.get("value"), terms.get("unit")
    if not isinstance(name, str) or not name:
        raise QueryError("a parameters condition needs a `name`")
    if value is None:
        return [Condition(key=name, relation=Relation.EXISTS)]
    if isinstance(value, Mapping):
        ((operator, operand),) = value.items()
        if operator not in _COMPARISONS:
            raise QueryError(
                f"parameter operator {operator!r} is not one of {sorted(_COMPARISONS)}"
            )
        return [Condition(key=name, relation=_COMPARISONS[operator], value=operand, unit=unit)]
    return [Condition(key=name, relation=Relation.EQUAL, value=value, unit=unit)]


def parameter_clauses(conditions: list[Condition]) -> list[dict[str, Any]]:
    return [condition_clause(c) for c in conditions]


def parameters_of(dataset: Mapping[str, Any], conditions: list[Condition]) -> list[dict[str, Any]]:
    """The dataset's metadata quantities as PaNOSC Parameters; asked-for ones in the asked unit."""
    wanted = {c.pair_key: c.unit for c in conditions if c.unit}
    flattened = flatten_scientific_metadata(dataset.get("scientificMetadata", {}))
    parameters = []
    for pair in flattened.pairs:
        number = pair.get("number")
        value: Any = number if number is not None else pair.get("text")
        unit = pair.get("unit")
        target = wanted.get(pair["key"])
        if target and unit and isinstance(number, float):
            try:
                value, unit = convert(number, unit, target), target
            except UnitError:
                pass
        parameters.append(
            {
                "id": f"{dataset['pid']}#{pair['key']}",
                "name": pair["key"],
                "value": value,
                "unit": unit,
                "datasetId": dataset["pid"],
            }
        )
    return parameters


def facility_of(creation_location: str | None) -> str | None:
    """`/DESY/P08` → `DESY`."""
    parts = [p for p in (creation_location or "").split("/") if p]
    return parts[0] if parts else None


def instrument_of(dataset: Mapping[str, Any]) -> dict[str, Any] | None:
    ids = dataset.get("instrumentIds") or []
    if not ids:
        return None
    return {
        "pid": ids[0],
        "name": ids[0],
        "facility": facility_of(dataset.get("creationLocation")),
    }


def panosc_dataset(
    dataset: Mapping[str, Any], relations: Mapping[str, Any], conditions: list[Condition]
) -> dict[str, Any]:
    """A stored (published) dataset as a PaNOSC Dataset, with the relations asked for."""
    result: dict[str, Any] = {
        "pid": dataset["pid"],
        "title": dataset.get("datasetName"),
        "isPublic": bool(dataset.get("isPublished")),
        "creationDate": dataset.get("creationTime"),
        "size": dataset.get("size"),
    }
    if "parameters" in relations:
        result["parameters"] = parameters_of(dataset, conditions)
    if "techniques" in relations:
        result["techniques"] = [
            {"pid": t.get("pid"), "name": t.get("name")} for t in dataset.get("techniques", [])
        ]
    if "instrument" in relations:
        result["instrument"] = instrument_of(dataset)
    if "documents" in relations:
        result["documents"] = [
            {"pid": pid, "type": "proposal", "isPublic": True}
            for pid in dataset.get("proposalIds", [])
        ]
    return result
