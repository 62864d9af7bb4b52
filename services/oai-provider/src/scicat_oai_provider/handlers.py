"""`catalogue.publications` → the OAI-PMH read model.

Thin on purpose: decode, let the domain decide, write, return. Returning means the record is
durable in MongoDB; only then does the ReliableConsumer commit the offset. Bad input raises
`Rejected` (dead-lettered with the reason); a store outage or a concurrent write propagates, and
the consumer retries the same message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import ConsumerRecord
from pydantic import ValidationError

from scicat_oai_provider.domain import (
    InvalidPublication,
    OaiRecord,
    RecordContent,
    apply_content,
    oai_identifier,
    registered_content,
    withdrawn_content,
)
from scicat_oai_provider.sets import proposal_ids
from scicat_oai_provider.store import OaiRecordStore, ProposalDirectory
from scicat_schemas.events import (
    PUBLICATION_EVENT,
    PublicationRegistered,
    PublicationRequested,
    PublicationWithdrawn,
)
from scicat_schemas.runtime.consumer import Rejected, rejected_from_validation

log = structlog.get_logger("scicat.oai_provider.handlers")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class PublicationHandler:
    store: OaiRecordStore
    repository_identifier: str
    datacentre_symbol: str
    facility: str
    proposals: ProposalDirectory
    clock: Callable[[], datetime] = _utc_now

    async def handle(self, message: ConsumerRecord[Any, Any]) -> None:
        try:
            event = PUBLICATION_EVENT.validate_json(message.value or b"")
        except ValidationError as error:
            if unknown_type := _unknown_publication_type(error):
                log.info("publication event type not used here; acknowledged", type=unknown_type)
                return
            raise rejected_from_validation(
                error, what=f"{message.topic} message at offset {message.offset}"
            ) from error
        if isinstance(event, PublicationRequested):
            return
        try:
            if isinstance(event, PublicationRegistered):
                await self._register(event)
            else:
                await self._withdraw(event)
        except InvalidPublication as error:
            raise Rejected(str(error), error_type="invalid-publication") from error

    async def _register(self, event: PublicationRegistered) -> None:
        record = event.data.record
        content = registered_content(
            record,
            repository_identifier=self.repository_identifier,
            datacentre_symbol=self.datacentre_symbol,
            facility=self.facility,
            proposal_parents=await self.proposals.proposal_parents(proposal_ids(record)),
        )
        current = await self.store.get(content.identifier)
        await self._apply(current, content, event=event.identity)

    async def _withdraw(self, event: PublicationWithdrawn) -> None:
        identifier = oai_identifier(self.repository_identifier, event.data.doi.strip())
        current = await self.store.get(identifier)
        content = withdrawn_content(
            current,
            repository_identifier=self.repository_identifier,
            doi=event.data.doi,
            publication_id=event.data.publication_id,
        )
        await self._apply(current, content, event=event.identity)

    async def _apply(
        self, current: OaiRecord | None, content: RecordContent, *, event: str
    ) -> None:
        updated = apply_content(current, content, event=event, now=self.clock())
        if updated is None:
            log.info("event already applied", identifier=content.identifier)
            return
        await self.store.save(updated, expected_version=current.version if current else None)
        log.info(
            "record stored",
            identifier=updated.identifier,
            datestamp=updated.datestamp.isoformat(),
            deleted=updated.deleted,
            content_changed=current is None or current.content_hash != updated.content_hash,
        )


def _unknown_publication_type(error: ValidationError) -> str | None:
    """The type of a well-formed event of a publication type this service has no use for.

    The doi-minter may add publication event types; they carry nothing the read model shows, so
    they are acknowledged rather than dead-lettered. Any other unknown type on this topic is a
    producer's mistake and is dead-lettered.
    """
    problems = error.errors()
    if len(problems) != 1 or problems[0]["type"] != "union_tag_invalid":
        return None
    tag = str(problems[0].get("ctx", {}).get("tag", ""))
    return tag if tag.startswith("publication.") else None
