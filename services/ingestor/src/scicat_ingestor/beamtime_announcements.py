"""Which beamtimes' datasets may hold changes not yet announced as `dataset.stored`.

A `beamtime.updated` completes every dataset of its beamtime (thousands, in several
transactions), announcing each transaction's datasets once it is committed. Announcing only the
datasets it changed is what keeps a DOOR export sent again every night from re-announcing, and
the indexer re-reading, every dataset of every running beamtime. That is safe only if no earlier
attempt changed datasets and died before announcing them: its retry finds them completed
already, "unchanged". So each beamtime has a flag, set in the transaction that stores its
proposals (before any dataset changes) and cleared by the same update once it has announced
everything and recorded itself:

- an update that finds the flag set follows an interrupted one (its own earlier attempt, or
  another update): it announces every dataset;
- a redelivered update (its marker found) announces every dataset while the flag is set (it may
  have died before clearing it) and none once it is cleared.

The flag holds the identity of the update that set it, and only that update clears it: a
consumer that lost the partition and finishes late cannot clear the flag of the update its
successor is applying. A beamtime with no record yet (stored before this record existed) counts
as flagged: the first update after the upgrade announces everything once.
"""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

ANNOUNCEMENT_COLLECTION = "PipelineBeamtimeAnnouncement"
"""`{_id: beamtime id, pending: identity of the update announcing, or null}`"""

Db = AsyncDatabase[dict[str, Any]]


async def flagged(db: Db, beamtime_id: str, session: AsyncClientSession | None = None) -> bool:
    """Whether the beamtime's datasets may hold changes not announced yet."""
    doc = await db[ANNOUNCEMENT_COLLECTION].find_one({"_id": beamtime_id}, session=session)
    return doc is None or doc.get("pending") is not None


async def flag(
    db: Db, beamtime_id: str, update: str, session: AsyncClientSession | None = None
) -> bool:
    """Flag the beamtime for `update` (an event identity) before its datasets change; whether it
    was `flagged` already (one command)."""
    before = await db[ANNOUNCEMENT_COLLECTION].find_one_and_update(
        {"_id": beamtime_id},
        {"$set": {"pending": update}},
        upsert=True,
        return_document=ReturnDocument.BEFORE,
        session=session,
    )
    return before is None or before.get("pending") is not None


async def flag_if_unknown(db: Db, beamtime_id: str, update: str) -> None:
    """Give a beamtime with no record yet a flag `update` can clear; another's flag stays."""
    await db[ANNOUNCEMENT_COLLECTION].update_one(
        {"_id": beamtime_id}, {"$setOnInsert": {"pending": update}}, upsert=True
    )


async def announced(db: Db, beamtime_id: str, update: str) -> None:
    """`update` has published every change to the beamtime's datasets: its flag is cleared (a
    flag set by another update since stays)."""
    await db[ANNOUNCEMENT_COLLECTION].update_one(
        {"_id": beamtime_id, "pending": update}, {"$set": {"pending": None}}
    )
