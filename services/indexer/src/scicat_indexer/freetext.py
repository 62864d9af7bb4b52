"""Free text: which values a dataset is found by, and the substring query of a fragment.

Every searchable value of a dataset is copied into one field, `search.text`, analysed into
lower-cased trigrams (one gram per character, in order). A fragment of three or more characters
must form its trigrams as a phrase (`match_phrase`: the trigrams at consecutive positions), and
the trigrams that cover it without overlap (every third one, and the last) are `term` filters.
On OpenSearch the phrase makes the match exact: exactly the values that contain the fragment,
any case (`nematic sample heating` does not match a value with the three words apart), and the
filters cost little (terms the phrase reads anyway). Each value is wrapped in start/end markers
before indexing, so a value of one or two characters has a trigram too, and a fragment of one or
two characters is a wildcard over the (small) dictionary of trigrams: every trigram is a
substring of its value, so this is exact as well.

The embedded osmem stacks all grams of a value at one position and answers the phrase (and a
`match` with operator `and`) with any of its grams, so there the covering trigrams decide alone:
no fragment is ever missed, but a value holding them apart from each other matches too. Covering
trigrams rather than all of them, because osmem's cost grows with every posting it reads.

Why not the alternatives (measured on osmem, see the service README): ngrams of 3–20 characters
per field cost ~18 terms per character, so indexing ran at 15–90 documents/s; the `wildcard`
field type is OpenSearch's own grep field but osmem checks every candidate slowly (1–9 s per
query at 100k datasets); `span_near` over the trigrams is exact on OpenSearch but never matches
on osmem.

PI e-mail addresses are personal data: they are kept in `search.memberText`, searched only
inside datasets the caller is a member of, so an anonymous caller cannot probe a published
dataset's PI address fragment by fragment.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any, Final

from scicat_indexer.mapping import DERIVED

GRAM: Final = 3
"""Length of the indexed grams (the analyzer in `mapping.ANALYSIS` uses the same)."""

VALUE_START: Final = "\x02"
VALUE_END: Final = "\x03"
"""Markers around each indexed value; control characters a fragment never contains."""

MAX_VALUE_CHARS: Final = 4096
"""Characters of one value that are searchable; a long description is cut, never refused."""

TEXT_FIELD: Final = f"{DERIVED}.text"
MEMBER_TEXT_FIELD: Final = f"{DERIVED}.memberText"


def indexed_values(values: Iterable[object]) -> list[str]:
    """The values as `search.text` holds them: unique, non-empty, cut and marked."""
    out: dict[str, None] = {}
    for value in values:
        text = str(value).strip()
        if text:
            out[f"{VALUE_START}{text[:MAX_VALUE_CHARS]}{VALUE_END}"] = None
    return list(out)


def escape_wildcard(fragment: str) -> str:
    """Make `*`, `?` and `\\` literal in a Lucene wildcard pattern."""
    return "".join(f"\\{c}" if c in "*?\\" else c for c in fragment)


def normalized_fragment(text: str | None) -> str:
    """The fragment as matched: trimmed, lower-cased, without control characters."""
    cleaned = "".join(c for c in (text or "") if unicodedata.category(c) != "Cc")
    return cleaned.strip().lower()


def fragment_query(field: str, fragment: str) -> dict[str, Any]:
    """Values of `field` that contain `fragment` (already normalized, not empty)."""
    if len(fragment) < GRAM:
        return {"wildcard": {field: {"value": f"*{escape_wildcard(fragment)}*"}}}
    if len(fragment) == GRAM:
        return {"term": {field: fragment}}
    starts = [*range(0, len(fragment) - GRAM, GRAM), len(fragment) - GRAM]
    grams = dict.fromkeys(fragment[i : i + GRAM] for i in starts)
    return {
        "bool": {
            "filter": [{"term": {field: gram}} for gram in grams],
            "must": [{"match_phrase": {field: fragment}}],
        }
    }


def text_query(text: str | None, members: dict[str, Any] | None = None) -> dict[str, Any]:
    """Datasets with a searchable value containing `text`, any case.

    `members` is the filter of the datasets the caller is a member of (None: anonymous): only in
    those are PI e-mail addresses searched too.
    """
    fragment = normalized_fragment(text)
    if not fragment:
        return {"match_all": {}}
    clauses = [fragment_query(TEXT_FIELD, fragment)]
    if members is not None:
        clauses.append(
            {
                "bool": {
                    "must": [fragment_query(MEMBER_TEXT_FIELD, fragment)],
                    "filter": [members],
                }
            }
        )
    return {"bool": {"should": clauses, "minimum_should_match": 1}}
