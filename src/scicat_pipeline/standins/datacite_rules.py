"""DataCite's DOI rules as its API server (lupo) applies them, free of HTTP so they are unit-tested.

The stand-in is only useful if it refuses what DataCite refuses: a client tested against a lenient
fake learns about a missing URL or a foreign prefix in production, after datasets were marked
published. The rules follow DataCite's support docs and its API server (lupo): states and events
(inapplicable events ignored), the DOI syntax, the account's prefix, partial updates with arrays
replaced wholesale, and what a registered or findable DOI must carry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from lxml import etree

KERNEL_NS = "http://datacite.org/schema/kernel-4"
DOI_PATTERN = re.compile(r"^10\.\d{4,5}/[-._;()/:a-zA-Z0-9*~$=]+$")
URL_PATTERN = re.compile(r"^(ftp|http|https)://\S+")

CONTROL_ATTRIBUTES = frozenset(
    {"event", "doi", "prefix", "suffix", "xml", "state", "created", "updated", "registered"}
)
"""Request attributes that steer the request or are set by the server; never stored as metadata."""


class State(StrEnum):
    DRAFT = "draft"
    REGISTERED = "registered"
    FINDABLE = "findable"


EVENTS = frozenset({"publish", "register", "hide", "show"})

_TRANSITIONS: dict[tuple[State, str], State] = {
    (State.DRAFT, "publish"): State.FINDABLE,
    (State.REGISTERED, "publish"): State.FINDABLE,
    (State.DRAFT, "register"): State.REGISTERED,
    (State.FINDABLE, "hide"): State.REGISTERED,
    (State.REGISTERED, "show"): State.FINDABLE,
}


class DoiError(Exception):
    """A refusal with DataCite's status and `errors` list, ready to become the response body."""

    def __init__(self, status: int, errors: list[dict[str, str]]) -> None:
        super().__init__(f"{status}: {errors}")
        self.status = status
        self.errors = errors


FORBIDDEN = [{"status": "403", "title": "You are not authorized to access this resource."}]
NOT_FOUND = [{"status": "404", "title": "The resource you are looking for doesn't exist."}]


@dataclass
class DoiRecord:
    """One DOI as the stand-in keeps it."""

    doi: str
    state: State = State.DRAFT
    attributes: dict[str, Any] = field(default_factory=dict)
    xml: bytes | None = None
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    registered: datetime | None = None


def next_state(current: State, event: str | None, *, doi: str) -> State:
    """The state after `event`; an inapplicable event is ignored (`whiny_transitions: false`)."""
    if event is None:
        return current
    if event not in EVENTS:
        expected = ", ".join(sorted(EVENTS))
        raise DoiError(
            422, [_error("event", f"Unknown event {event!r}; use one of {expected}.", doi)]
        )
    return _TRANSITIONS.get((current, event), current)


def check_doi(doi: str, *, prefix: str) -> str:
    """The DOI in lower case (DOIs ignore case); 422 on bad syntax, 403 on a foreign prefix."""
    if not DOI_PATTERN.match(doi):
        raise DoiError(422, [_error("doi", "Is invalid", doi)])
    if doi.split("/", 1)[0] != prefix:
        raise DoiError(403, FORBIDDEN)
    return doi.lower()


def merge_attributes(stored: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A PUT changes only what it sends; a sent array replaces the stored one wholesale."""
    merged = dict(stored)
    for key, value in update.items():
        if key not in CONTROL_ATTRIBUTES:
            merged[key] = value
    if isinstance(merged.get("publisher"), str):
        merged["publisher"] = {"name": merged["publisher"]}
    return merged


def fill_from_xml(attributes: dict[str, Any], resource: etree._Element) -> dict[str, Any]:
    """Mandatory fields found in the XML, for those the JSON attributes do not carry."""

    def texts(path: str) -> list[str]:
        return [t.strip() for t in resource.xpath(f"{path}/text()", namespaces={"d": KERNEL_NS})]

    found: dict[str, Any] = {}
    if names := texts("d:creators/d:creator/d:creatorName"):
        found["creators"] = [{"name": n} for n in names]
    if titles := texts("d:titles/d:title"):
        found["titles"] = [{"title": t} for t in titles]
    if publisher := texts("d:publisher"):
        found["publisher"] = {"name": publisher[0]}
    if year := texts("d:publicationYear"):
        found["publicationYear"] = year[0]
    general = resource.xpath("d:resourceType/@resourceTypeGeneral", namespaces={"d": KERNEL_NS})
    if general:
        found["types"] = {"resourceTypeGeneral": str(general[0])}
    return {**found, **{k: v for k, v in attributes.items() if v not in (None, "", [], {})}}


def findable_errors(attributes: dict[str, Any], *, doi: str) -> list[dict[str, str]]:
    """What keeps a DOI from being registered or findable; empty when nothing does."""
    errors: list[dict[str, str]] = []

    def missing(element: str) -> str:
        return f"Missing child element(s). Expected is ( {{{KERNEL_NS}}}{element} )."

    if not _named(attributes.get("creators"), "name"):
        errors.append(_error("creators", missing("creator"), doi))
    if not _named(attributes.get("titles"), "title"):
        errors.append(_error("titles", missing("title"), doi))
    publisher = attributes.get("publisher")
    if not (isinstance(publisher, dict) and str(publisher.get("name") or "").strip()):
        errors.append(_error("publisher", "Can't be blank", doi))
    if not re.fullmatch(r"\d{4}", str(attributes.get("publicationYear") or "")):
        errors.append(_error("publicationYear", "Must be a four-digit year", doi))
    types = attributes.get("types")
    if not (isinstance(types, dict) and types.get("resourceTypeGeneral")):
        errors.append(_error("types", "resourceTypeGeneral can't be blank", doi))
    url = attributes.get("url")
    if not url:
        errors.append(_error("url", "Can't be blank", doi))
    elif not URL_PATTERN.match(str(url)):
        errors.append(_error("url", "Is invalid", doi))
    return errors


def _named(items: object, key: str) -> bool:
    return (
        isinstance(items, list)
        and bool(items)
        and all(isinstance(i, dict) and str(i.get(key) or "").strip() for i in items)
    )


def _error(source: str, title: str, doi: str) -> dict[str, str]:
    return {"source": source, "title": title, "uid": doi}
