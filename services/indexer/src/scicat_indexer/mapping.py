"""The dataset index: its versioned name, analysis settings and mapping.

Changing anything here that affects already indexed documents means a new concrete index
(`<alias>-v2`), filled and then swapped in behind the alias, never an in-place edit: that is why
readers and writers only ever name the alias.

The mapping is `dynamic: false`: the full dataset is kept in `_source` (the API returns it as
stored) but only the fields below are indexed, so arbitrary scientific metadata can never add a
field to the mapping. Scientific metadata is searchable through `scientificMetadataPairs`, a
`nested` list of key/value pairs built by `domain.flatten_scientific_metadata`.
"""

from __future__ import annotations

from typing import Any, Final

FIRST_VERSION: Final = 1
"""The `-vN` suffix of the first concrete index; `reindex` creates `-v(N+1)` next to it."""

MAPPING_REVISION: Final = 2
"""Bumped with every change of `ANALYSIS` or `MAPPINGS`; kept in the index's `_meta`.

An index of an older revision keeps working but lacks what the new code queries (revision 1 had
no `search.text`): the indexer warns at start-up until `scicat-pipeline reindex` has moved the
alias to an index of this revision.
"""

DERIVED: Final = "search"
"""Object of fields derived at indexing time (free text, proposal ids, beamtimes, PIs).

Not part of the dataset: readers never get it back.
"""

METADATA_PAIRS: Final = "scientificMetadataPairs"
"""Indexed copy of the scientific metadata, derived from it; not part of the dataset itself."""

FACET_FIELDS: Final = {
    "instrument": "instrumentIds",
    "beamtime": f"{DERIVED}.beamtimeIds",
    "proposal": f"{DERIVED}.proposalIds",
    "pi": f"{DERIVED}.pis",
    "technique": "techniques.name",
    "type": "type",
}
"""Facet (and filter) name → keyword field it counts."""

SORT_FIELDS: Final = {
    "creationTime": "creationTime",
    "datasetName": "datasetName.lower",
    "size": "size",
    "numberOfFiles": "numberOfFiles",
    "pid": "pid",
}
"""Sortable names → indexed field."""

KEYWORD_MAX_CHARS: Final = 8191
"""Longer values are not put in keyword fields: Lucene refuses terms over 32766 UTF-8 bytes."""


def concrete_index(alias: str, version: int = FIRST_VERSION) -> str:
    """The versioned index `<alias>-v<version>`."""
    return f"{alias}-v{version}"


def index_version(alias: str, index: str) -> int | None:
    """N of `<alias>-vN`, or None for an index of another name."""
    prefix = f"{alias}-v"
    suffix = index[len(prefix) :] if index.startswith(prefix) else ""
    return int(suffix) if suffix.isdigit() else None


def _keyword(**extra: Any) -> dict[str, Any]:
    return {"type": "keyword", **extra}


def _lowercase_keyword() -> dict[str, Any]:
    return {"type": "keyword", "normalizer": "lowercase_keyword", "ignore_above": KEYWORD_MAX_CHARS}


ANALYSIS: Final[dict[str, Any]] = {
    "tokenizer": {
        # token_chars [] keeps every character, spaces and punctuation included, so a fragment
        # like "scan 0" or "/p08/" is a chain of grams of the indexed value.
        "trigram": {"type": "ngram", "min_gram": 3, "max_gram": 3, "token_chars": []}
    },
    "normalizer": {"lowercase_keyword": {"type": "custom", "filter": ["lowercase"]}},
    "analyzer": {
        "trigram": {"type": "custom", "tokenizer": "trigram", "filter": ["lowercase"]},
    },
}

_FREE_TEXT: Final[dict[str, Any]] = {
    "type": "text",
    "analyzer": "trigram",
    "norms": False,
    "index_options": "positions",
    # Values of one document are 100 positions apart: a chain of grams never spans two values.
    "position_increment_gap": 100,
}

MAPPINGS: Final[dict[str, Any]] = {
    "dynamic": False,
    "properties": {
        "pid": _keyword(),
        "type": _keyword(),
        "datasetName": _keyword(
            ignore_above=KEYWORD_MAX_CHARS, fields={"lower": _lowercase_keyword()}
        ),
        "sourceFolder": _keyword(ignore_above=KEYWORD_MAX_CHARS),
        "keywords": _keyword(ignore_above=KEYWORD_MAX_CHARS),
        "ownerGroup": _keyword(),
        "accessGroups": _keyword(),
        "proposalIds": _keyword(),
        "instrumentIds": _keyword(),
        "creationLocation": _keyword(),
        "principalInvestigators": _keyword(ignore_above=KEYWORD_MAX_CHARS),
        "techniques": {"type": "object", "properties": {"name": _keyword(), "pid": _keyword()}},
        "isPublished": {"type": "boolean"},
        "creationTime": {"type": "date"},
        "size": {"type": "long"},
        "numberOfFiles": {"type": "long"},
        "pipelineRevision": {"type": "long"},
        "scientificMetadata": {"type": "object", "enabled": False},
        DERIVED: {
            "type": "object",
            "properties": {
                "text": _FREE_TEXT,
                "memberText": _FREE_TEXT,
                "proposalIds": _keyword(ignore_above=KEYWORD_MAX_CHARS),
                "beamtimeIds": _keyword(ignore_above=KEYWORD_MAX_CHARS),
                "pis": _keyword(ignore_above=KEYWORD_MAX_CHARS),
            },
        },
        METADATA_PAIRS: {
            "type": "nested",
            "properties": {
                "key": _keyword(ignore_above=1024),
                "text": _keyword(ignore_above=1024, fields={"lower": _lowercase_keyword()}),
                "number": {"type": "double"},
                "unit": _keyword(ignore_above=256),
                "numberSI": {"type": "double"},
                "unitSI": _keyword(ignore_above=256),
            },
        },
    },
}


def index_body(alias: str | None) -> dict[str, Any]:
    """The create-index request; with `alias`, the new index is created as its write index.

    `reindex` creates the next version without the alias and moves the alias once it is full.
    """
    body: dict[str, Any] = {
        "settings": {"analysis": ANALYSIS},
        "mappings": {**MAPPINGS, "_meta": {"mapping_revision": MAPPING_REVISION}},
    }
    if alias is not None:
        body["aliases"] = {alias: {"is_write_index": True}}
    return body
