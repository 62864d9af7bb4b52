"""Personal contact data stays with the people who may see a dataset privately.

A published dataset is visible to everyone, but the e-mail addresses the ingestor copies from the
proposal system (`ownerEmail`, `contactEmail`, and DOOR's applicant e-mail in
`principalInvestigators`) are personal data, not publication metadata. Callers outside the
dataset's `ownerGroup`/`accessGroups` get the dataset without them, and facets never list e-mail
addresses to anyone (a facet aggregates datasets the caller may not be a member of). Filtering by a
PI stays possible; only what is shown is redacted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

CONTACT_FIELDS = ("ownerEmail", "contactEmail")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def is_email(value: object) -> bool:
    return isinstance(value, str) and bool(_EMAIL.match(value.strip()))


def is_member(dataset: dict[str, Any], groups: Iterable[str]) -> bool:
    """Whether `groups` reach the dataset through its owner or access groups."""
    mine = set(groups)
    return dataset.get("ownerGroup") in mine or bool(mine & set(dataset.get("accessGroups") or []))


def redact_dataset(dataset: dict[str, Any], groups: Iterable[str]) -> dict[str, Any]:
    """The dataset as this caller may see it: members see everything."""
    if is_member(dataset, groups):
        return dataset
    shown = {key: value for key, value in dataset.items() if key not in CONTACT_FIELDS}
    if "principalInvestigators" in shown:
        shown["principalInvestigators"] = [
            pi for pi in shown["principalInvestigators"] or [] if not is_email(pi)
        ]
    return shown


def redact_facets(facets: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Facet buckets without e-mail addresses; the other buckets and their counts are unchanged."""
    return {
        name: [bucket for bucket in buckets if not is_email(bucket.get("value"))]
        for name, buckets in facets.items()
    }
