"""The set hierarchy (OAI-PMH §2.6): where a publication sits, and how sets are named. Pure.

    facility                              every facility
    facility:<facility>                   e.g. facility:desy
    facility:<facility>:<instrument>      e.g. facility:desy:p08 (an instrument or beamline)
    proposal                              every proposal
    proposal:<proposal>                   e.g. proposal:11012345
    proposal:<proposal>:<beamtime>        e.g. proposal:11012345:11019001 (a beamtime of it)
    openaire_data                         every record (OpenAIRE's set for research data)

An instrument belongs to one facility and a beamtime to one proposal, so both are children: a
harvester asking for `facility:desy` or `proposal:11012345` receives everything below it. A
dataset's `proposalIds` hold beamtime ids (and, from the ingestor, their parent proposals);
which id is a beamtime of which proposal comes from the `Proposal` collection
(`parentProposalId`). An id without a known parent is a proposal of its own; a proposal that is
the parent of another listed id is only an ancestor, so headers carry the minimal setSpecs
(`proposal:p:b`, not also `proposal:p`).

A record stores every set it is in, ancestors included and named, so ListSets can name each
level; headers show only the minimal ones.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scicat_schemas.documents import PublicationRecord

FACILITY = "facility"
PROPOSAL = "proposal"
OPENAIRE_DATA = "openaire_data"

TOP_LEVEL_SETS: dict[str, str] = {
    FACILITY: "Facilities",
    PROPOSAL: "Proposals",
    OPENAIRE_DATA: "OpenAIRE data",
}
"""Names of the roots of the set hierarchy; `set=facility` selects every facility."""

SET_DESCRIPTIONS: dict[str, str] = {
    FACILITY: "Publications by facility (facility:<facility>) and by instrument or beamline "
    "(facility:<facility>:<instrument>).",
    PROPOSAL: "Publications by proposal (proposal:<proposal>) and by beamtime of a proposal "
    "(proposal:<proposal>:<beamtime>).",
    OPENAIRE_DATA: "Every published dataset, for OpenAIRE's research-data harvest.",
}
"""Shown as `setDescription` (Dublin Core) in ListSets, so a harvester can pick a level."""


@dataclass(frozen=True)
class SetEntry:
    spec: str
    name: str


def slug(value: str) -> str:
    """A setSpec segment: lower-case ASCII letters, digits, `-`, `_` and `.` only."""
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9_.]+", "-", ascii_text.lower()).strip("-")


def set_ancestors(spec: str) -> list[str]:
    """`a:b:c` → `["a", "a:b", "a:b:c"]`: the sets a record in `a:b:c` belongs to."""
    parts = spec.split(":")
    return [":".join(parts[: i + 1]) for i in range(len(parts))]


def minimal_specs(specs: Iterable[str]) -> tuple[str, ...]:
    """The specs that are no other spec's ancestor, in their original order (header setSpecs)."""
    specs = tuple(specs)
    ancestors = {ancestor for spec in specs for ancestor in set_ancestors(spec)[:-1]}
    return tuple(spec for spec in specs if spec not in ancestors)


def with_ancestors(entries: Iterable[SetEntry]) -> list[SetEntry]:
    """Every set of the hierarchy the entries imply, named where known, sorted by setSpec."""
    named: dict[str, str] = {}
    for entry in entries:
        for ancestor in set_ancestors(entry.spec)[:-1]:
            named.setdefault(ancestor, TOP_LEVEL_SETS.get(ancestor, ancestor))
        named[entry.spec] = entry.name
    return [SetEntry(spec, named[spec]) for spec in sorted(named)]


def proposal_ids(record: PublicationRecord) -> list[str]:
    """The proposal and beamtime ids a publication relates to, first seen first.

    A proposal DOI (`record.proposal`) relates to its proposal or beamtime; a dataset DOI to its
    datasets' `proposalIds`.
    """
    ids = [p for dataset in record.datasets for p in dataset.proposalIds]
    proposal = getattr(record, "proposal", None)
    if proposal is not None:
        ids.insert(0, proposal.proposalId)
    return list(dict.fromkeys(ids))


def _instruments(record: PublicationRecord) -> list[str]:
    proposal = getattr(record, "proposal", None)
    found: list[str] = list(dict.fromkeys(proposal.instrumentIds)) if proposal else []
    for dataset in record.datasets:
        location = (dataset.creationLocation or "").rstrip("/")
        named = dataset.instrumentIds or ([location.rsplit("/", 1)[-1]] if location else [])
        for instrument in named:
            if instrument not in found:
                found.append(instrument)
    return found


def publication_sets(
    record: PublicationRecord, *, facility: str, proposal_parents: Mapping[str, str]
) -> tuple[SetEntry, ...]:
    """Every set of a publication, ancestors included and named (see the module docstring).

    `proposal_parents` maps a beamtime id to its proposal id; ids missing from it are proposals.
    """
    entries: dict[str, str] = {}
    facility_slug = slug(facility)
    if facility_slug:
        entries[FACILITY] = TOP_LEVEL_SETS[FACILITY]
        entries[f"{FACILITY}:{facility_slug}"] = f"Facility {facility}"
        for instrument in _instruments(record):
            if segment := slug(instrument):
                spec = f"{FACILITY}:{facility_slug}:{segment}"
                entries.setdefault(spec, f"Instrument {instrument} at {facility}")
    proposal = getattr(record, "proposal", None)
    if proposal is not None and proposal.parentProposalId:
        proposal_parents = {proposal.proposalId: proposal.parentProposalId, **proposal_parents}
    for proposal_id in proposal_ids(record):
        parent = proposal_parents.get(proposal_id)
        path = [(parent, f"Proposal {parent}")] if parent and slug(parent) else []
        if path:
            path.append((proposal_id, f"Beamtime {proposal_id} of proposal {parent}"))
        else:
            path.append((proposal_id, f"Proposal {proposal_id}"))
        segments = [slug(value) for value, _ in path]
        if not all(segments):
            continue
        entries.setdefault(PROPOSAL, TOP_LEVEL_SETS[PROPOSAL])
        for depth, (_, name) in enumerate(path, start=1):
            entries.setdefault(":".join([PROPOSAL, *segments[:depth]]), name)
    entries[OPENAIRE_DATA] = TOP_LEVEL_SETS[OPENAIRE_DATA]
    return tuple(SetEntry(spec, name) for spec, name in entries.items())
