"""The dataset index: what the indexer needs from it, and the OpenSearch adapter.

Writes use OpenSearch external versioning with the dataset's `pipelineRevision`
(`version_type=external_gte`), so OpenSearch itself keeps the newest copy: a stale copy is refused
with 409 and a redelivered one rewrites identical content. No read-modify-write, no race between
replicas.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import structlog
from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import RequestError

from scicat_indexer.mapping import (
    DERIVED,
    MAPPING_REVISION,
    METADATA_PAIRS,
    concrete_index,
    index_body,
)
from scicat_indexer.settings import OpenSearchSettings

log = structlog.get_logger("scicat.indexer.store")

_READ_EXCLUDES = [METADATA_PAIRS, DERIVED]
"""Derived fields stay out of what readers get back: they see the dataset as stored."""


class PutOutcome(StrEnum):
    INDEXED = "indexed"
    STALE = "stale"
    """The index already holds this dataset at a higher revision; nothing was written."""


class DeleteOutcome(StrEnum):
    DELETED = "deleted"
    ABSENT = "absent"
    """There was nothing to delete (never indexed, or deleted before)."""
    STALE = "stale"
    """The index holds a revision newer than the deletion; nothing was deleted."""


class DocumentRefused(Exception):
    """OpenSearch answered 400 for this document: retrying the same request can never succeed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BulkItemFailed(Exception):
    """OpenSearch could not apply one item of a bulk request for a reason that may pass (429,
    5xx, a missing alias): the whole batch is retried."""


@dataclass(frozen=True)
class BulkWrite:
    """One item of a bulk request: index `source` (or delete, when None) at `revision`."""

    pid: str
    revision: int
    source: dict[str, Any] | None


BulkResult = PutOutcome | DeleteOutcome | DocumentRefused
"""Per item: written, stale, absent, or refused by OpenSearch (400) with its reason."""


@dataclass(frozen=True)
class SearchPage:
    total: int
    items: list[dict[str, Any]]
    sort_values: list[list[Any]] = field(default_factory=list)
    """The `sort` values of each hit, for `search_after` paging."""
    aggregations: dict[str, Any] = field(default_factory=dict)


class DatasetIndex(Protocol):
    async def bulk(self, writes: Sequence[BulkWrite]) -> list[BulkResult]: ...

    async def search(self, body: dict[str, Any]) -> SearchPage: ...

    async def ready(self) -> bool: ...


class OpenSearchDatasetIndex:
    """`DatasetIndex` on OpenSearch, always through the alias.

    Built without I/O; `connected()` opens the client and makes sure the alias exists, and
    closes the client on exit. Connection errors, timeouts and 5xx propagate unchanged so the
    consumer retries the message.
    """

    def __init__(self, settings: OpenSearchSettings) -> None:
        self._settings = settings
        self._client: AsyncOpenSearch | None = None

    @property
    def alias(self) -> str:
        return self._settings.alias

    @property
    def client(self) -> AsyncOpenSearch:
        if self._client is None:
            raise RuntimeError("the OpenSearch client is used outside `connected()`")
        return self._client

    @asynccontextmanager
    async def connected(self) -> AsyncIterator[OpenSearchDatasetIndex]:
        self._client = AsyncOpenSearch(**self.client_options())
        try:
            await self.ensure_index()
            yield self
        finally:
            client, self._client = self._client, None
            await client.close()

    def client_options(self) -> dict[str, Any]:
        settings = self._settings
        options: dict[str, Any] = {
            "hosts": [settings.url],
            "verify_certs": settings.verify_certs,
            "ssl_show_warn": settings.verify_certs,
            "timeout": settings.timeout_seconds,
        }
        if settings.ca_certs is not None:
            options["ca_certs"] = str(settings.ca_certs)
        if settings.username is not None:
            password = settings.password.get_secret_value() if settings.password else ""
            options["http_auth"] = (settings.username, password)
        return options

    async def ensure_index(self) -> None:
        """Create `<alias>-v1` behind the alias unless the alias already exists.

        An existing alias is left alone, whatever index it points to: moving it is a migration
        decision, not a start-up one. Two replicas starting together both end with the alias.
        """
        if await self.client.indices.exists_alias(name=self.alias):
            await self.warn_if_outdated()
            return
        if await self.client.indices.exists(index=self.alias):
            raise RuntimeError(
                f"OpenSearch has a concrete index named {self.alias!r}, where the indexer needs "
                f"an alias; reindex it into {concrete_index(self.alias)!r} and delete it, "
                "or configure another INDEXER_OPENSEARCH__ALIAS"
            )
        index = concrete_index(self.alias)
        try:
            await self.client.indices.create(index=index, body=index_body(self.alias))
            log.info("created index", index=index, alias=self.alias)
        except RequestError as error:
            if error.error != "resource_already_exists_exception":
                raise
            await self.client.indices.put_alias(
                index=index, name=self.alias, body={"is_write_index": True}
            )

    async def outdated_indices(self) -> dict[str, int]:
        """Indices behind the alias built with an older mapping revision, with their revision.

        An index from before revisions were recorded counts as revision 1.
        """
        mappings = await self.client.indices.get_mapping(index=self.alias)
        revisions = {
            name: int(body.get("mappings", {}).get("_meta", {}).get("mapping_revision", 1))
            for name, body in mappings.items()
        }
        return {name: rev for name, rev in revisions.items() if rev < MAPPING_REVISION}

    async def warn_if_outdated(self) -> None:
        """Say at start-up that searches need `reindex`: the alias keeps its index until then."""
        for index, revision in (await self.outdated_indices()).items():
            log.warning(
                "index.mapping_outdated",
                index=index,
                revision=revision,
                current=MAPPING_REVISION,
                action="run `scicat-pipeline reindex` to rebuild it with the current mapping; "
                "until then free text and new fields search the old layout",
            )

    async def bulk(self, writes: Sequence[BulkWrite]) -> list[BulkResult]:
        """Apply `writes` in one `_bulk` request through the alias; one result per write.

        Raises `BulkItemFailed` when an item failed for a reason that may pass, so the caller
        retries the whole batch (every item is idempotent under external versioning).
        """
        return await bulk_into(self.client, self.alias, writes)

    async def search(self, body: dict[str, Any]) -> SearchPage:
        answer = await self.client.search(
            index=self.alias, body=body, _source_excludes=_READ_EXCLUDES
        )
        hits = answer["hits"]
        return SearchPage(
            total=int(hits["total"]["value"]),
            items=[hit["_source"] for hit in hits["hits"]],
            sort_values=[hit.get("sort", []) for hit in hits["hits"]],
            aggregations=answer.get("aggregations", {}),
        )

    async def ready(self) -> bool:
        """The cluster answers and is not red."""
        health = await self.client.cluster.health()
        return health.get("status") in ("green", "yellow")


def describe(error: RequestError) -> str:
    """OpenSearch's own words for a 400: error type and reason, with the cause when given."""
    info = error.info if isinstance(error.info, dict) else {}
    detail = info.get("error")
    if not isinstance(detail, dict):
        return f"OpenSearch refused the request (400): {error.error}"
    text = f"{detail.get('type')}: {detail.get('reason')}"
    cause = detail.get("caused_by")
    while isinstance(cause, dict):
        text += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        cause = cause.get("caused_by")
    return f"OpenSearch refused the document (400): {text}"


async def bulk_into(
    client: AsyncOpenSearch, index: str, writes: Sequence[BulkWrite]
) -> list[BulkResult]:
    """`writes` as one `_bulk` request into `index` (an alias or a concrete index)."""
    if not writes:
        return []
    try:
        answer = await client.bulk(body=bulk_body(index, writes))
    except RequestError as error:
        # OpenSearch refuses a whole request for one invalid action (an id over 512 bytes):
        # halve it until the invalid write is alone, so only that one is refused.
        if len(writes) == 1:
            return [DocumentRefused(describe(error))]
        middle = len(writes) // 2
        head = await bulk_into(client, index, writes[:middle])
        return [*head, *await bulk_into(client, index, writes[middle:])]
    return [item_result(item, w) for item, w in zip(answer["items"], writes, strict=True)]


def bulk_body(alias: str, writes: Sequence[BulkWrite]) -> str:
    """The NDJSON of a `_bulk` request: external versions, through the alias."""
    lines: list[str] = []
    for write in writes:
        meta = {
            "_index": alias,
            "_id": write.pid,
            "version": write.revision,
            "version_type": "external_gte",
        }
        if write.source is None:
            lines.append(json.dumps({"delete": meta}))
        else:
            lines.append(json.dumps({"index": meta}))
            lines.append(json.dumps(write.source))
    return "\n".join(lines) + "\n"


def item_result(item: dict[str, Any], write: BulkWrite) -> BulkResult:
    """One `_bulk` answer item as an outcome; `BulkItemFailed` when it may pass on retry."""
    ((action, answer),) = item.items()
    status = int(answer.get("status", 500))
    error = answer.get("error")
    if status < 300:
        return PutOutcome.INDEXED if action == "index" else DeleteOutcome.DELETED
    if status == 409:
        return PutOutcome.STALE if action == "index" else DeleteOutcome.STALE
    if status == 404 and action == "delete" and not error:
        return DeleteOutcome.ABSENT
    if status == 400:
        return DocumentRefused(f"OpenSearch refused the document (400): {_explain(error)}")
    raise BulkItemFailed(
        f"OpenSearch could not {action} {write.pid!r} ({status}): {_explain(error)}"
    )


def _explain(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    text = f"{error.get('type')}: {error.get('reason')}"
    cause = error.get("caused_by")
    while isinstance(cause, dict):
        text += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        cause = cause.get("caused_by")
    return text
