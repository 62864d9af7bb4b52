"""Kafka offsets as the record of what a batch applied (`DEDUPLICATION=offsets`).

The default record is one identity per event (`applied_events`): it recognises an event
delivered again by Kafka *and* one produced twice, at the price of an index entry and a lookup
per event, the largest part of what SecantusDB spends per ingested event. This is the other
choice, the transactional-sink pattern of Kafka consumers: per partition, the next offset to
apply, stored in the same transaction as the effect ("fence"). A record below it was applied by
a committed transaction, so a redelivery is recognised without any per-event write. What it
gives up: an event *produced* twice (same CloudEvent `source` + `id`, a new offset) is applied
again, which changes nothing when it repeats a fact and undoes a newer change when it is stale.

Two rules keep "nothing lost, nothing applied twice":
- the fence is written conditionally on the value read, so a second consumer of the partition
  (after a rebalance) fails its transaction instead of applying the same records again;
- a record the domain refused in a committed transaction is refused again when redelivered
  (its dead letter may not have been sent before a crash): the refusals of the last records
  (`window` offsets below the fence: at most one consumer batch can come back) are kept with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from scicat_ingestor.store_values import ConcurrentUpdate, Partition

FENCE_COLLECTION = "PipelineDeliveryFence"


@dataclass(frozen=True)
class Refusal:
    """Why the domain refused a record: `kind` is `invalid` (`InvalidAcquisition`) or
    `corrupt` (`CorruptStoredDocument`), `reason` its message."""

    kind: str
    reason: str


@dataclass
class Fence:
    """A partition's next offset to apply (`None`: nothing applied yet) and the refusals kept."""

    next: int | None = None
    refused: dict[int, Refusal] = field(default_factory=dict)

    def applied(self, offset: int) -> bool:
        return self.next is not None and offset < self.next


def _id(where: Partition) -> str:
    return f"{where[0]}/{where[1]}"


async def read_fences(
    db: AsyncDatabase[dict[str, Any]], partitions: Iterable[Partition], session: AsyncClientSession
) -> dict[Partition, Fence]:
    """The fence of each of `partitions` (one query); an absent one is `Fence()`."""
    wanted = {_id(where): where for where in partitions}
    fences = {where: Fence() for where in wanted.values()}
    async for doc in db[FENCE_COLLECTION].find({"_id": {"$in": list(wanted)}}, session=session):
        refused = {
            int(offset): Refusal(str(kind), str(reason))
            for offset, kind, reason in doc.get("refused") or []
        }
        fences[wanted[doc["_id"]]] = Fence(int(doc["next"]), refused)
    return fences


async def advance_fences(
    db: AsyncDatabase[dict[str, Any]],
    session: AsyncClientSession,
    read: dict[Partition, Fence],
    applied: dict[Partition, tuple[int, dict[int, Refusal]]],
    window: int,
) -> None:
    """Move each partition's fence past the last offset `applied` there, with the refusals of
    the last `window` offsets; conditional on the fence `read`, so a consumer that lost the
    partition meanwhile fails (`ConcurrentUpdate`) instead of applying records twice."""
    for where, (last, refused) in applied.items():
        before = read[where]
        following = last + 1
        if before.next is not None and following <= before.next:
            continue  # nothing new past the fence
        kept = {**before.refused, **refused}
        doc = {
            "next": following,
            "refused": [
                [offset, refusal.kind, refusal.reason]
                for offset, refusal in sorted(kept.items())
                if offset >= following - window
            ],
        }
        collection = db[FENCE_COLLECTION]
        if before.next is None:
            try:
                await collection.insert_one({"_id": _id(where), **doc}, session=session)
            except DuplicateKeyError as error:
                raise ConcurrentUpdate(f"{_id(where)} was fenced by another consumer") from error
            continue
        result = await collection.update_one(
            {"_id": _id(where), "next": before.next}, {"$set": doc}, session=session
        )
        if result.matched_count != 1:
            raise ConcurrentUpdate(f"{_id(where)} moved on meanwhile: another consumer has it")
