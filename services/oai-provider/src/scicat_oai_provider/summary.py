"""What is kept about the read model as a whole (collection `OaiReadModel`).

    {_id: "layout", version}        the layout of `OaiRecord` + `OaiListEntry` (see `store`)
    {_id: "earliest", datestamp}    a lower bound of every datestamp (`earliestDatestamp`)
    {_id: "sets", any}              whether any record is in a set (else `noSetHierarchy`)

The last two are facts the records hold, but finding them there is a sort or an unindexed
match, which the embedded SecantusDB answers by reading the whole collection (5–11 s at 100k
records): on the first Identify, the first list page and the first set request of every
process. So they are written with the records instead: set when the store is created empty,
changed by a write only when it changes them (a write of a record stamped "now" in a set
changes neither, so concurrent writes do not conflict on them), and searched for in the
records only in a store created before they were kept, once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

READ_MODEL_COLLECTION = "OaiReadModel"
_LAYOUT = "layout"
_EARLIEST = "earliest"
_SETS = "sets"
_NO_RECORDS = datetime(9999, 12, 31, tzinfo=UTC)
"""The kept earliest datestamp of a store that has had no record yet."""


class ReadModelSummary:
    """The `OaiReadModel` documents, cached once read (they only ever move one way)."""

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self._collection = collection
        self._earliest: datetime | None = None
        self._sets = False

    async def layout(self) -> int:
        marker = await self._collection.find_one({"_id": _LAYOUT})
        return 0 if marker is None else int(marker.get("version", 0))

    async def set_layout(self, version: int) -> None:
        await self._collection.replace_one({"_id": _LAYOUT}, {"version": version}, upsert=True)

    async def start_empty_store(self) -> None:
        """A store without records: no bound to search for later, no set hierarchy yet."""
        for key, value in ((_EARLIEST, _NO_RECORDS), (_SETS, False)):
            field = "datestamp" if key == _EARLIEST else "any"
            await self._collection.update_one(
                {"_id": key}, {"$setOnInsert": {field: value}}, upsert=True
            )

    async def earliest(self, search: Callable[[], Awaitable[datetime | None]]) -> datetime | None:
        """The kept bound; `search` finds it in the records when none is kept (once per store)."""
        if self._earliest is None:
            kept = await self._collection.find_one({"_id": _EARLIEST})
            if kept is not None:
                datestamp = kept["datestamp"].astimezone(UTC)
                self._earliest = datestamp if datestamp < _NO_RECORDS else None
                return self._earliest
            self._earliest = await search()
            if self._earliest is not None:
                await self._collection.update_one(
                    {"_id": _EARLIEST}, {"$min": {"datestamp": self._earliest}}, upsert=True
                )
        return self._earliest

    async def has_sets(self, search: Callable[[], Awaitable[bool]]) -> bool:
        """Whether a record is in a set; `search` looks in the records when it is not kept."""
        if not self._sets:
            kept = await self._collection.find_one({"_id": _SETS})
            if kept is not None:
                self._sets = bool(kept.get("any"))
            elif await search():
                await self._collection.update_one(
                    {"_id": _SETS}, {"$set": {"any": True}}, upsert=True
                )
                self._sets = True
        return self._sets

    async def note_written(self, datestamp: datetime, *, in_a_set: bool, session: Any) -> None:
        """Keep both facts true for a record being written (in its transaction, if any).

        The earliest bound is written only when this datestamp lowers it, and the set flag
        only until this process has seen it set.
        """
        if self._earliest is not None and datestamp < self._earliest:
            self._earliest = datestamp
        await self._collection.update_one(
            {"_id": _EARLIEST, "datestamp": {"$gt": datestamp}},
            {"$set": {"datestamp": datestamp}},
            session=session,
        )
        if in_a_set and not self._sets:
            await self._collection.update_one(
                {"_id": _SETS}, {"$set": {"any": True}}, upsert=True, session=session
            )

    def committed(self, *, in_a_set: bool) -> None:
        """The write `note_written` saw is durable: a set flag it wrote is true from now on."""
        self._sets = self._sets or in_a_set
