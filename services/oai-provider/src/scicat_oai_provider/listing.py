"""What ListRecords and ListIdentifiers read: one pre-rendered entry per record and format.

Collection `OaiListEntry`, derived from `OaiRecord` (see `store`) and written with it:

    {_id: "<prefix> <identifier>", listKey: "<prefix> <datestamp> <identifier>",
     setPaths: [spec and every ancestor], header: "<header>…</header>", metadata: xml | null,
     version}

`listKey` is the list order of one format, `(datestamp, identifier)`, as one string that sorts
the same way (fixed-width datestamp), so a page is one range on one indexed field
(`list_key`), or on `setPaths` equality + that range (`list_key_by_set`), sorted by it. An
entry exists only for a format the record is disseminated in, so no page skips records. The
header is serialized once, when the record is written, and the metadata is the stored
rendering: a page is the entries' strings joined, nothing is rebuilt per request. `metadata` is
null for a deleted record, whose list entry is its header alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from scicat_oai_provider.domain import METADATA_FORMATS, ListQuery, OaiRecord, RecordKey
from scicat_oai_provider.responses import header_xml
from scicat_oai_provider.sets import OPENAIRE_DATA, set_ancestors

OAI_LIST_COLLECTION = "OaiListEntry"
_DATESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class ListEntry:
    """One record of a list page, as the response shows it."""

    list_key: str
    header: str
    metadata: str | None

    @property
    def key(self) -> RecordKey:
        """Where the list continues after this entry (parsed only for a page's last entry)."""
        _prefix, datestamp, identifier = self.list_key.split(" ", 2)
        moment = datetime.strptime(datestamp, _DATESTAMP_FORMAT).replace(tzinfo=UTC)
        return RecordKey(moment, identifier)


@dataclass(frozen=True)
class Page:
    entries: list[ListEntry]
    span_seconds: int
    """Seconds of list order a full page needed; sizes the next page's window."""


def second(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_DATESTAMP_FORMAT)


def list_key(prefix: str, datestamp: datetime, identifier: str) -> str:
    """The list order `(datestamp, identifier)` of one format as one string that sorts the same.

    The datestamp part has a fixed width, so string order is tuple order, and a bare
    `"<prefix> <datestamp>"` is a bound: every key of an earlier second sorts below it, every
    key of that second or later above.
    """
    return f"{prefix} {second(datestamp)} {identifier}"


def entry_id(prefix: str, identifier: str) -> str:
    return f"{prefix} {identifier}"


def entry_documents(record: OaiRecord) -> list[dict[str, Any]]:
    """The list entries of `record`: one per format it is disseminated in."""
    header = header_xml(record)
    paths = sorted({path for entry in record.sets for path in set_ancestors(entry.spec)})
    return [
        {
            "_id": entry_id(prefix, record.identifier),
            "listKey": list_key(prefix, record.datestamp, record.identifier),
            "setPaths": paths,
            "header": header,
            "metadata": None if record.deleted else record.metadata.get(prefix),
            "version": record.version,
        }
        for prefix in record.formats
        if prefix in METADATA_FORMATS
    ]


def stale_entry_ids(record: OaiRecord) -> list[str]:
    """Entries of formats the record is no longer disseminated in."""
    return [entry_id(p, record.identifier) for p in METADATA_FORMATS if p not in record.formats]


async def insert_missing_entries(
    collection: AsyncCollection[dict[str, Any]], records: list[OaiRecord]
) -> None:
    """Writes the entries of `records` that do not exist yet.

    For building entries beside the event path (the upgrade from an earlier layout). An entry
    that exists already was written by the event path, with its record in one transaction, so
    for the record's current or a newer version, or by an interrupted earlier upgrade from the
    same record: either way it is kept, and its duplicate `_id` is ignored.
    """
    documents = [entry for record in records for entry in entry_documents(record)]
    if not documents:
        return
    try:
        await collection.insert_many(documents, ordered=False)
    except BulkWriteError as error:
        if any(e.get("code") != _DUPLICATE_KEY for e in error.details.get("writeErrors", [])):
            raise


async def create_indexes(collection: AsyncCollection[dict[str, Any]]) -> None:
    await collection.create_index([("listKey", ASCENDING)], name="list_key")
    await collection.create_index(
        [("setPaths", ASCENDING), ("listKey", ASCENDING)], name="list_key_by_set"
    )


def list_filter(query: ListQuery, after: RecordKey | None, *, below: datetime | None = None) -> Any:
    """One range on `listKey` (+ set equality): `(from | after, min(until, below))`.

    `openaire_data` is the set of every record (`sets.publication_sets`; a withdrawal keeps the
    sets, and a record without sets has no formats, hence no entries), so its list is the whole
    list and is served by the single-field index, which SecantusDB walks in order, instead of
    the compound one, whose candidates it sorts (about a third slower).
    """
    prefix = query.metadata_prefix
    upper = query.until + timedelta(seconds=1)
    key: dict[str, str] = {"$lt": f"{prefix} {second(min(upper, below) if below else upper)}"}
    if after is not None:
        key["$gt"] = list_key(prefix, after.datestamp, after.identifier)
    elif query.from_ is not None:
        key["$gte"] = f"{prefix} {second(query.from_)}"
    else:
        key["$gt"] = f"{prefix} "
    selector: dict[str, Any] = {"listKey": key}
    if query.set_spec is not None and query.set_spec != OPENAIRE_DATA:
        selector["setPaths"] = query.set_spec
    return selector


def _window_seconds(seconds_per_page: int) -> int:
    """Seconds of list order to read for a page, from the density last seen, plus 25 %."""
    return max(seconds_per_page + seconds_per_page // 4, 1)


async def read_page(
    collection: AsyncCollection[dict[str, Any]],
    query: ListQuery,
    *,
    start: datetime,
    after: RecordKey | None,
    limit: int,
    with_metadata: bool,
    span_seconds: int,
) -> Page:
    """Walks the list order from `start` in time windows of adaptive width, each one query.

    A plain `range + sort + limit` is ideal on MongoDB, but engines without a limit pushed into
    the index walk (the embedded SecantusDB) read, decode and match every document of the range
    before sorting and cutting it, which makes a full harvest quadratic. Bounding each query to
    a window keeps every query near one page on any engine. The window is sized from the record
    density the previous page saw (carried in the token as the seconds a page needed) with 25 %
    headroom, because every document read beyond the page is paid for and then dropped; a
    window that comes up short is followed by one sized for the records still missing (four
    times wider when it was empty, so sparse years are crossed in a few queries).
    """
    projection = (
        {"listKey": 1, "header": 1, "metadata": 1} if with_metadata else {"listKey": 1, "header": 1}
    )
    seconds = _window_seconds(span_seconds)
    window_start, position = start, after
    entries: list[ListEntry] = []
    while len(entries) < limit and window_start <= query.until:
        below = window_start + timedelta(seconds=seconds)
        cursor = (
            collection.find(list_filter(query, position, below=below), projection=projection)
            .sort("listKey", ASCENDING)
            .limit(limit - len(entries))
        )
        found = [
            ListEntry(document["listKey"], document["header"], document.get("metadata"))
            async for document in cursor
        ]
        if found:
            entries += found
            position = found[-1].key
        missing = limit - len(entries)
        if missing > 0:
            window_start = below
            seconds = _window_seconds(seconds * missing // len(found)) if found else seconds * 4
    if not entries:
        return Page(entries, seconds)
    used = (entries[-1].key.datestamp - start).total_seconds() + 1
    return Page(entries, max(int(used * limit / len(entries)), 1))
