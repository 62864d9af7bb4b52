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

MIN_GRAM: Final = 3
MAX_GRAM: Final = 20
"""Fragments with MIN_GRAM..MAX_GRAM characters match one indexed gram exactly."""

DERIVED: Final = "search"
"""Object of fields derived at indexing time (file names, proposal titles, PIs, metadata text).

Not part of the dataset: readers never get it back.
"""

SUBSTRING_FIELDS: Final = (
    "datasetName",
    "description",
    "sourceFolder",
    "keywords",
    f"{DERIVED}.files",
    f"{DERIVED}.metadataText",
    f"{DERIVED}.proposalIds",
    f"{DERIVED}.proposalTitles",
    f"{DERIVED}.pis",
)
"""Fields free text searches for a substring; each has `.ngram` and `.lower` subfields."""

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

NGRAM_MAX_TOKENS: Final = (MAX_GRAM - MIN_GRAM + 1) * 4096
"""Grams indexed per value: substrings starting in the first 4096 characters are findable.

Without a cap one long description would expand to millions of terms.
"""


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


def _substring_subfields() -> dict[str, Any]:
    return {
        "lower": {
            "type": "keyword",
            "normalizer": "lowercase_keyword",
            "ignore_above": KEYWORD_MAX_CHARS,
        },
        "ngram": {
            "type": "text",
            "analyzer": "substring_ngram",
            "search_analyzer": "whole_value_lowercase",
        },
    }


ANALYSIS: Final[dict[str, Any]] = {
    "tokenizer": {
        # token_chars [] keeps every character, spaces and punctuation included, so a fragment
        # like "scan 0" or "/p08/" is one gram of the indexed value.
        "substring_ngram": {
            "type": "ngram",
            "min_gram": MIN_GRAM,
            "max_gram": MAX_GRAM,
            "token_chars": [],
        }
    },
    "filter": {"substring_ngram_cap": {"type": "limit", "max_token_count": NGRAM_MAX_TOKENS}},
    "normalizer": {"lowercase_keyword": {"type": "custom", "filter": ["lowercase"]}},
    "analyzer": {
        "substring_ngram": {
            "type": "custom",
            "tokenizer": "substring_ngram",
            "filter": ["lowercase", "substring_ngram_cap"],
        },
        # The query side keeps the fragment whole: one term, equal to one indexed gram.
        "whole_value_lowercase": {
            "type": "custom",
            "tokenizer": "keyword",
            "filter": ["lowercase"],
        },
    },
}

MAPPINGS: Final[dict[str, Any]] = {
    "dynamic": False,
    "properties": {
        "pid": _keyword(),
        "type": _keyword(),
        "datasetName": {"type": "text", "fields": _substring_subfields()},
        "description": {"type": "text", "fields": _substring_subfields()},
        "sourceFolder": _keyword(ignore_above=KEYWORD_MAX_CHARS, fields=_substring_subfields()),
        "keywords": _keyword(ignore_above=KEYWORD_MAX_CHARS, fields=_substring_subfields()),
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
                "files": _keyword(ignore_above=KEYWORD_MAX_CHARS, fields=_substring_subfields()),
                "metadataText": _keyword(
                    ignore_above=KEYWORD_MAX_CHARS, fields=_substring_subfields()
                ),
                "proposalIds": _keyword(fields=_substring_subfields()),
                "beamtimeIds": _keyword(),
                "proposalTitles": {"type": "text", "fields": _substring_subfields()},
                "pis": _keyword(ignore_above=KEYWORD_MAX_CHARS, fields=_substring_subfields()),
            },
        },
        METADATA_PAIRS: {
            "type": "nested",
            "properties": {
                "key": _keyword(ignore_above=1024),
                "text": _keyword(
                    ignore_above=1024,
                    fields={
                        "words": {"type": "text"},
                        "lower": {"type": "keyword", "normalizer": "lowercase_keyword"},
                    },
                ),
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
        "settings": {
            "index": {"max_ngram_diff": MAX_GRAM - MIN_GRAM},
            "analysis": ANALYSIS,
        },
        "mappings": MAPPINGS,
    }
    if alias is not None:
        body["aliases"] = {alias: {"is_write_index": True}}
    return body
