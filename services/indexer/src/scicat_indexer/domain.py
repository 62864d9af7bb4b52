"""What the indexer decides, without I/O: the indexed form of a dataset and the search request.

Everything here is a pure function of its arguments, so the rules (how metadata is flattened,
which query a text fragment becomes) are unit-tested without OpenSearch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from scicat_indexer.freetext import indexed_values
from scicat_indexer.mapping import DERIVED, METADATA_PAIRS
from scicat_indexer.redaction import is_email
from scicat_schemas.documents import Dataset
from scicat_schemas.units import UnitError, to_si

MAX_METADATA_PAIRS: Final = 1000
"""Pairs indexed per dataset; well under OpenSearch's 10 000 nested documents per document."""

MAX_VALUES_PER_PAIR: Final = 100
"""Values of one list leaf that are indexed (a 2048-point spectrum is not worth searching)."""

MAX_METADATA_DEPTH: Final = 32

QUANTITY_KEYS: Final = frozenset({"value", "unit", "valueSI", "unitSI"})
"""Keys of a SciCat quantity leaf `{value, unit, valueSI, unitSI}`."""

MAX_INDEXED_FILES: Final = 1000
"""File paths indexed per dataset for free text; each path costs hundreds of grams."""

MAX_METADATA_TEXTS: Final = 200
"""String metadata values copied to the free-text field per dataset."""

BEAMTIME_PROPOSAL_TYPE: Final = "Beamtime"
"""SciCat's Proposal `type` of a beamtime (a child of the DOOR proposal)."""


@dataclass
class FlattenedMetadata:
    """The key/value pairs of a dataset's scientific metadata, and whether some were left out.

    Leaving out is only ever about the index: the whole metadata stays in `_source`.
    """

    pairs: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False


def flatten_scientific_metadata(
    metadata: Mapping[str, Any],
    *,
    max_pairs: int = MAX_METADATA_PAIRS,
    max_values: int = MAX_VALUES_PER_PAIR,
) -> FlattenedMetadata:
    """One pair per leaf: `key` is the dotted path, values go to `text` or `number`.

    - `{"value": v, "unit": u}` (SciCat quantity) is one leaf with `unit`; its other keys
      besides `valueSI`/`unitSI` are flattened as children.
    - A list of plain values is one leaf with several values; objects inside a list are
      flattened under the list's path (no index in the key), as OpenSearch flattens arrays.
    - Booleans become the text `true`/`false`; NaN and infinities become text because a
      numeric field refuses them; `null` leaves are skipped.
    """
    flattener = _Flattener(max_pairs=max_pairs, max_values=max_values)
    flattener.walk(metadata, "", 0)
    return flattener.result


@dataclass
class _Flattener:
    max_pairs: int
    max_values: int
    result: FlattenedMetadata = field(default_factory=FlattenedMetadata)

    def walk(self, value: Any, path: str, depth: int) -> None:
        if depth > MAX_METADATA_DEPTH:
            self.result.truncated = True
        elif isinstance(value, Mapping):
            children: Mapping[str, Any] = value
            if _is_quantity(value):
                self.emit(path, _as_list(value["value"]), unit=value.get("unit"), si=_si(value))
                children = {k: v for k, v in value.items() if k not in QUANTITY_KEYS}
            for key, child in children.items():
                self.walk(child, f"{path}.{key}" if path else str(key), depth + 1)
        elif isinstance(value, list):
            self.emit(path, [item for item in value if _is_plain(item)])
            for item in value:
                if not _is_plain(item):
                    self.walk(item, path, depth + 1)
        else:
            self.emit(path, [value])

    def emit(
        self,
        key: str,
        values: list[Any],
        unit: Any = None,
        si: tuple[list[float], str] | None = None,
    ) -> None:
        present = [v for v in values if v is not None]
        if not present or not key:
            return
        if len(self.result.pairs) >= self.max_pairs:
            self.result.truncated = True
            return
        if len(present) > self.max_values:
            self.result.truncated = True
            present = present[: self.max_values]
        pair = _pair(key, present, unit)
        if si is not None and si[0]:
            numbers = si[0][: self.max_values]
            pair["numberSI"] = numbers[0] if len(numbers) == 1 else numbers
            pair["unitSI"] = si[1]
        self.result.pairs.append(pair)


def _si(quantity: Mapping[str, Any]) -> tuple[list[float], str] | None:
    """The SI values of a quantity: the ingestor's `valueSI`/`unitSI`, else converted here.

    None when the unit is unknown or the value not numeric: the pair keeps its raw number and
    unit, and only unit-less conditions can find it.
    """
    stored, stored_unit = quantity.get("valueSI"), quantity.get("unitSI")
    if stored is not None and isinstance(stored_unit, str):
        # Spelled as our conversion spells it (SciCat's mathjs writes `J` where pint writes
        # `kg*m**2/s**2`), so one query unit matches both.
        canonical = _to_si(_as_list(stored), stored_unit)
        if canonical is not None:
            return canonical
    unit = quantity.get("unit")
    if not isinstance(unit, str) or not unit.strip():
        return None
    return _to_si(_as_list(quantity["value"]), unit)


def _to_si(values: list[Any], unit: str) -> tuple[list[float], str] | None:
    numbers: list[float] = []
    si_unit = None
    for item in values:
        if _finite_number(item) is None:
            continue
        try:
            converted = to_si(item, unit)
        except (UnitError, ValueError, TypeError, ArithmeticError):
            return None
        if isinstance(converted.value, float) and math.isfinite(converted.value):
            numbers.append(converted.value)
            si_unit = converted.unit
    return (numbers, si_unit) if numbers and si_unit is not None else None


def _pair(key: str, values: list[Any], unit: Any) -> dict[str, Any]:
    texts: list[str] = []
    numbers: list[float] = []
    for item in values:
        number = _finite_number(item)
        if number is not None:
            numbers.append(number)
        elif isinstance(item, bool):
            texts.append("true" if item else "false")
        else:
            texts.extend(_text(item))
    pair: dict[str, Any] = {"key": key}
    if texts:
        pair["text"] = texts[0] if len(texts) == 1 else texts
    if numbers:
        pair["number"] = numbers[0] if len(numbers) == 1 else numbers
    if unit is not None and str(unit).strip():
        pair["unit"] = str(unit)
    return pair


def _text(value: Any) -> list[str]:
    """The value as text; empty for an integer too long for Python to print (over 4300 digits)."""
    try:
        return [str(value)]
    except ValueError:
        return []


def _is_plain(value: Any) -> bool:
    return not isinstance(value, Mapping | list)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _is_quantity(value: Mapping[str, Any]) -> bool:
    return (
        "value" in value and "unit" in value and all(_is_plain(v) for v in _as_list(value["value"]))
    )


def _finite_number(value: Any) -> float | None:
    """The value as a double, or None when it is not a number OpenSearch can store as one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class CatalogueContext:
    """What the catalogue knows around a dataset: its file paths and its Proposal documents.

    Read from MongoDB (`OrigDatablock`, `Proposal`) when the dataset is indexed, so a search by
    file name, proposal title, beamtime or PI finds the dataset.
    """

    files: tuple[str, ...] = ()
    proposals: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class IndexedDataset:
    """A dataset as sent to OpenSearch: id, external version and the document body."""

    pid: str
    revision: int
    source: dict[str, Any]
    metadata_truncated: bool
    files_truncated: bool = False


def indexed_dataset(dataset: Dataset, context: CatalogueContext | None = None) -> IndexedDataset:
    """The dataset as stored, plus the derived, searchable fields (metadata pairs, `search`)."""
    context = context or CatalogueContext()
    source = dataset.model_dump(mode="json", by_alias=True)
    flattened = flatten_scientific_metadata(dataset.scientificMetadata)
    source[METADATA_PAIRS] = flattened.pairs
    source[DERIVED] = derived_fields(dataset, context, flattened.pairs)
    return IndexedDataset(
        pid=dataset.pid,
        revision=dataset.pipelineRevision,
        source=source,
        metadata_truncated=flattened.truncated,
        files_truncated=max(dataset.numberOfFiles, len(context.files)) > MAX_INDEXED_FILES,
    )


def derived_fields(
    dataset: Dataset, context: CatalogueContext, pairs: list[dict[str, Any]]
) -> dict[str, Any]:
    """Free text (`text`, members-only `memberText`), proposal and beamtime ids and PIs.

    `text` holds every value a fragment should find: name, description, source folder,
    keywords, file paths, string metadata values, proposal and beamtime ids, proposal titles
    and PI names. PI e-mail addresses go to `memberText` instead (see `freetext`).
    """
    metadata_texts: list[str] = []
    for pair in pairs:
        metadata_texts.extend(_as_list(pair.get("text", [])))
    proposal_ids = list(dataset.proposalIds)
    beamtime_ids: list[str] = []
    titles: list[str] = []
    pis = list(dataset.principalInvestigators)
    for proposal in context.proposals:
        proposal_id = proposal.get("proposalId")
        proposal_ids += [i for i in (proposal_id, proposal.get("parentProposalId")) if i]
        if proposal.get("type") == BEAMTIME_PROPOSAL_TYPE and proposal_id:
            beamtime_ids.append(str(proposal_id))
        if proposal.get("title"):
            titles.append(str(proposal["title"]))
        name = " ".join(
            str(proposal[k]) for k in ("pi_firstname", "pi_lastname") if proposal.get(k)
        )
        pis += [p for p in (name, proposal.get("pi_email")) if p]
    unique_pis = _unique(str(p) for p in pis)
    unique_proposals = _unique(str(i) for i in proposal_ids)
    text = [
        dataset.datasetName,
        dataset.description,
        dataset.sourceFolder,
        *dataset.keywords,
        *context.files[:MAX_INDEXED_FILES],
        *_unique(metadata_texts)[:MAX_METADATA_TEXTS],
        *unique_proposals,
        *titles,
        *(p for p in unique_pis if not is_email(p)),
    ]
    return {
        "text": indexed_values(v for v in text if v),
        "memberText": indexed_values(p for p in unique_pis if is_email(p)),
        "proposalIds": unique_proposals,
        "beamtimeIds": _unique(beamtime_ids),
        "pis": unique_pis,
    }


def _unique(values: Any) -> list[str]:
    return list(dict.fromkeys(values))
