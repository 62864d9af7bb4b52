"""Proposals and beamtimes in MongoDB: read, written only when changed, and their datasets.

Shared by the store's per-event path (a run's beamtime) and `beamtime.updated`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from scicat_ingestor.beamtimes import BeamtimeFacts, merged_parent
from scicat_ingestor.stored_documents import CorruptStoredDocument, proposal_from
from scicat_schemas.documents import (
    DATASET_COLLECTION,
    PROPOSAL_COLLECTION,
    PROPOSAL_TYPE_BEAMTIME,
    Proposal,
)

Db = AsyncDatabase[dict[str, Any]]


async def proposal(db: Db, proposal_id: str, session: AsyncClientSession) -> Proposal | None:
    doc = await db[PROPOSAL_COLLECTION].find_one({"_id": proposal_id}, session=session)
    return None if doc is None else proposal_from(doc)


async def save_proposal(db: Db, new: Proposal, session: AsyncClientSession) -> None:
    """Write `new` unless the stored one is the same (a repeat writes nothing)."""
    stored = await proposal(db, new.proposalId, session)
    if stored is not None and stored.model_dump() == new.model_dump():
        return
    doc = {"_id": new.proposalId, **new.model_dump(mode="python")}
    await db[PROPOSAL_COLLECTION].replace_one(
        {"_id": new.proposalId}, doc, upsert=True, session=session
    )


async def save_proposals(
    db: Db, parent: Proposal, child: Proposal, session: AsyncClientSession
) -> None:
    """A DOOR proposal (merged into the stored one: `merged_parent`) and its beamtime."""
    stored_parent = await proposal(db, parent.proposalId, session)
    await save_proposal(db, merged_parent(stored_parent, parent), session)
    await save_proposal(db, child, session)


async def beamtime_facts(
    db: Db, beamtime_id: str | None, session: AsyncClientSession
) -> BeamtimeFacts | None:
    """What the stored beamtime gives its datasets, or None when it is not known (yet)."""
    if beamtime_id is None:
        return None
    return _facts(await proposal(db, beamtime_id, session))


async def beamtimes_facts(
    db: Db, beamtime_ids: list[str], session: AsyncClientSession
) -> dict[str, BeamtimeFacts | CorruptStoredDocument]:
    """`beamtime_facts` of many in one query; a damaged one is its `CorruptStoredDocument`, so it
    spoils only its own datasets' events."""
    if not beamtime_ids:
        return {}
    facts: dict[str, BeamtimeFacts | CorruptStoredDocument] = {}
    async for doc in db[PROPOSAL_COLLECTION].find({"_id": {"$in": beamtime_ids}}, session=session):
        try:
            known = _facts(proposal_from(doc))
        except CorruptStoredDocument as error:
            facts[doc["_id"]] = error
            continue
        if known is not None:
            facts[doc["_id"]] = known
    return facts


def _facts(stored: Proposal | None) -> BeamtimeFacts | None:
    if stored is None or stored.type != PROPOSAL_TYPE_BEAMTIME:
        return None
    return BeamtimeFacts.from_proposal(stored)


async def pids_of_beamtime(
    db: Db, beamtime_id: str, session: AsyncClientSession | None
) -> list[str]:
    cursor = db[DATASET_COLLECTION].find(
        _of_beamtime(beamtime_id), projection={"pid": True}, session=session
    )
    return sorted([doc["pid"] async for doc in cursor])


def datasets_of_beamtime(db: Db, beamtime_id: str) -> AsyncIterator[dict[str, Any]]:
    """The beamtime's datasets as stored (without their file lists), in `pid` order, as read."""
    return db[DATASET_COLLECTION].find(_of_beamtime(beamtime_id), sort=[("pid", 1)])


def _of_beamtime(beamtime_id: str) -> dict[str, Any]:
    return {"proposalIds": beamtime_id}
