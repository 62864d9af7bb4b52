"""What is kept about the read model as a whole: collections `OaiReadModel` and `OaiSet`.

    OaiReadModel {_id: "layout", version}      the layout of the collections (see `store`)
    OaiReadModel {_id: "earliest", datestamp}  a lower bound of every datestamp
    OaiReadModel {_id: "sets", any}            whether any record is in a set
    OaiSet {_id: setSpec, name}                every set a record is in (ListSets)

All but the layout are facts the records hold, but finding them there is a sort, an unindexed
match or an aggregation, which the embedded SecantusDB answers by reading the whole collection
(5–11 s at 100k records): on the first Identify, list page and set request of every process, and
on every ListSets. So they are written with the records instead: set when the store is created
empty (or upgraded), changed by a write only when it changes them (a write of a record stamped
"now" in known sets changes none of them, so concurrent writes do not conflict on them), and
searched for in the records only in a store created before they were kept, once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from scicat_oai_provider.sets import SetEntry

READ_MODEL_COLLECTION = "OaiReadModel"
SET_COLLECTION = "OaiSet"
_LAYOUT = "layout"
_EARLIEST = "earliest"
_SETS = "sets"
_NO_RECORDS = datetime(9999, 12, 31, tzinfo=UTC)
"""The kept earliest datestamp of a store that has had no record yet."""


class ReadModelSummary:
    """The kept facts, cached once read (they only ever move one way)."""

    def __init__(
        self,
        collection: AsyncCollection[dict[str, Any]],
        sets: AsyncCollection[dict[str, Any]],
    ) -> None:
        self._collection = collection
        self._set_names = sets
        self._earliest: datetime | None = None
        self._sets = False
        self._known_sets: set[str] = set()

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

    async def set_entries(self) -> list[SetEntry]:
        """Every set a record is in, with its name (the name first written wins)."""
        return [SetEntry(d["_id"], d["name"]) async for d in self._set_names.find({})]

    async def note_written(
        self, datestamp: datetime, *, sets: Iterable[SetEntry], session: Any
    ) -> None:
        """Keep the facts true for records being written (in their transaction, if any).

        The earliest bound is written only when this datestamp lowers it; the set flag and a
        set's name only until this process has seen them written.
        """
        if self._earliest is not None and datestamp < self._earliest:
            self._earliest = datestamp
        await self._collection.update_one(
            {"_id": _EARLIEST, "datestamp": {"$gt": datestamp}},
            {"$set": {"datestamp": datestamp}},
            session=session,
        )
        names = {entry.spec: entry.name for entry in sets}
        if names and not self._sets:
            await self._collection.update_one(
                {"_id": _SETS}, {"$set": {"any": True}}, upsert=True, session=session
            )
        for spec in sorted(names.keys() - self._known_sets):
            await self._set_names.update_one(
                {"_id": spec}, {"$setOnInsert": {"name": names[spec]}}, upsert=True, session=session
            )

    def committed(self, *, sets: Iterable[SetEntry]) -> None:
        """The write `note_written` saw is durable: what it wrote is known from now on."""
        specs = {entry.spec for entry in sets}
        self._sets = self._sets or bool(specs)
        self._known_sets |= specs
