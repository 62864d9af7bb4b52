"""`catalogue.publications` → findable (or hidden) DOIs, published datasets, and the events.

The order of effects is the point of this module:
1. store the PublishedData (status `public`) before calling DataCite, so a DOI DataCite knows is
   never unknown to us;
2. `PUT /dois/{doi}` with `event: publish`;
3. only then flip the datasets to `isPublished` and announce them (`dataset.stored`);
4. mark the PublishedData `registered` and announce it (`publication.registered`);
5. return, and only then is the message acknowledged.
Every step is idempotent, so a crash anywhere followed by redelivery converges and re-announces.

A draft request stops after step 2 (a DataCite draft, PublishedData `private`, nothing announced).
An amendment takes the same path with the stored request merged with its changes (status
`amended`). A withdrawal hides the DOI first, then unpublishes the datasets no other registered
publication names, marks the PublishedData `withdrawn`, and announces `publication.withdrawn`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from aiokafka import ConsumerRecord
from pydantic import ValidationError

from scicat_doi_minter import domain, lifecycle
from scicat_doi_minter.publishing import EventPublisher
from scicat_doi_minter.registrar import DataCiteUnavailable, DoiRegistrar, RegistrationRefused
from scicat_doi_minter.settings import Settings
from scicat_doi_minter.store import (
    PROPOSAL_FIELD,
    REQUEST_FIELD,
    PublicationStore,
    StoredDatasetInvalid,
)
from scicat_schemas.documents import Dataset, PublishedData
from scicat_schemas.events import (
    PUBLICATIONS_TOPIC_EVENT,
    CloudEvent,
    PublicationAmendmentRequested,
    PublicationRequested,
    PublicationRequestedData,
    PublicationWithdrawalRequested,
)
from scicat_schemas.runtime.consumer import Rejected, rejected_from_validation
from scicat_schemas.topics import CATALOGUE_DATASETS, CATALOGUE_PUBLICATIONS

log = structlog.get_logger("scicat.doi_minter")

T = TypeVar("T")


class PublicationHandler:
    def __init__(
        self,
        *,
        settings: Settings,
        store: PublicationStore,
        registrar: DoiRegistrar,
        events: EventPublisher,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registrar = registrar
        self.events = events

    async def on_publication_event(self, record: ConsumerRecord[Any, Any]) -> None:
        """Requests are work; `registered`/`withdrawn` are our own output, ignored."""
        try:
            event = PUBLICATIONS_TOPIC_EVENT.validate_json(record.value or b"")
        except ValidationError as error:
            raise rejected_from_validation(error, what="publication event") from error
        if not isinstance(
            event,
            PublicationRequested | PublicationAmendmentRequested | PublicationWithdrawalRequested,
        ):
            return
        with structlog.contextvars.bound_contextvars(
            event_id=event.id, event_type=event.type, publication_id=event.data.publication_id
        ):
            try:
                if isinstance(event, PublicationRequested):
                    await self.mint(event, event.data)
                elif isinstance(event, PublicationAmendmentRequested):
                    await self.amend(event)
                else:
                    await self.withdraw(event)
            except (domain.UnpublishableRequest, StoredDatasetInvalid) as error:
                raise Rejected(str(error), error_type="unpublishable") from error

    async def amend(self, event: PublicationAmendmentRequested) -> None:
        doi = domain.doi_for(self.settings.datacite.prefix, event.data.publication_id)
        existing = lifecycle.require_amendable(
            await self.store.get_published(doi), publication_id=event.data.publication_id
        )
        request = lifecycle.amended_request(
            await self.store.get_request(existing.doi), event.data.changes, doi=doi
        )
        await self.mint(event, request, amended=True)

    async def mint(
        self, event: CloudEvent, request: PublicationRequestedData, *, amended: bool = False
    ) -> None:
        """Register (or update) the DOI of `request`; everything is decided before the first
        write, so a refusal leaves no trace."""
        doi = domain.doi_for(self.settings.datacite.prefix, request.publication_id)
        landing_page = self.settings.landing_page(doi)
        now = datetime.now(UTC)
        found = await self.store.find_datasets(request.dataset_pids)
        datasets = domain.require_datasets(request.dataset_pids, found)
        proposal = None
        if request.proposal_id is not None:
            proposal = domain.proposal_summary(
                domain.require_proposal(
                    request.proposal_id, await self.store.find_proposal(request.proposal_id)
                )
            )
        existing = await self.store.get_published(doi)
        domain.check_registrable(existing, request)
        pending = domain.pending_publication(
            request,
            doi=doi,
            datasets=datasets,
            landing_page=landing_page,
            default_publisher=self.settings.publisher,
            existing=existing,
            now=now,
            types=domain.ResourceTypeDefaults(
                proposal_general=self.settings.proposal_resource_type_general,
                proposal_text=self.settings.proposal_resource_type,
            ),
            links=await self._catalogue_links(doi, request, datasets),
        )
        summaries = [domain.dataset_summary(d) for d in datasets]
        record = domain.registered_record(
            pending, summaries, existing=existing, now=now, proposal=proposal, amended=amended
        )
        attributes = domain.registration_attributes(
            record, landing_page=landing_page, draft=request.draft
        )
        extra = {
            PROPOSAL_FIELD: proposal.model_dump() if proposal else None,
            REQUEST_FIELD: request.model_dump(mode="json"),
        }

        await self.store.save_pending(pending, summaries, **extra)
        await self._at_datacite(doi, self.registrar.publish(doi, attributes))
        if request.draft:
            log.info("doi reserved as a draft", doi=doi)
            return
        for dataset in await self.store.mark_datasets_published(pending.datasetPids, at=now):
            await self._announce_dataset(dataset)
        await self.store.save_registered(record.publication, summaries, **extra)
        await self.events.publish(
            domain.publication_registered(record, source=self.settings.source, request=event),
            topic=CATALOGUE_PUBLICATIONS,
            key=request.publication_id,
        )
        log.info(
            "publication amended" if amended else "publication registered",
            doi=doi,
            datasets=len(datasets),
            proposal=request.proposal_id,
        )

    async def withdraw(self, event: PublicationWithdrawalRequested) -> None:
        doi = domain.doi_for(self.settings.datacite.prefix, event.data.publication_id)
        existing = lifecycle.require_withdrawable(
            await self.store.get_published(doi), publication_id=event.data.publication_id
        )
        now = datetime.now(UTC)
        withdrawn = lifecycle.withdrawn_publication(existing, reason=event.data.reason, now=now)
        if not lifecycle.was_at_datacite(existing):
            await self._withdraw_unregistered(existing, withdrawn)
            return
        await self._at_datacite(doi, self.registrar.hide(doi))
        unpublish = lifecycle.datasets_to_unpublish(
            existing.datasetPids,
            still_published=await self.store.still_published(existing.datasetPids, except_doi=doi),
        )
        for dataset in await self.store.mark_datasets_unpublished(unpublish, at=now):
            await self._announce_dataset(dataset)
        await self.store.save_withdrawn(withdrawn)
        await self.events.publish(
            lifecycle.publication_withdrawn(
                withdrawn, source=self.settings.source, unpublished=unpublish
            ),
            topic=CATALOGUE_PUBLICATIONS,
            key=event.data.publication_id,
        )
        log.info("publication withdrawn", doi=doi, datasets_unpublished=len(unpublish))

    async def _withdraw_unregistered(
        self, existing: PublishedData, withdrawn: PublishedData
    ) -> None:
        """Never registered here, but DataCite may hold it anyway: a reserved draft, or a publish
        that DataCite accepted after our request timed out. Ask, and undo what it holds."""
        doi = existing.doi
        state = await self._at_datacite(doi, self.registrar.state(doi))
        if state == "draft":
            await self._at_datacite(doi, self.registrar.delete_draft(doi))
        elif state == "findable":
            await self._at_datacite(doi, self.registrar.hide(doi))
        await self.store.save_withdrawn(withdrawn)
        log.info("unregistered publication withdrawn", doi=doi, datacite_state=state)

    async def _catalogue_links(
        self, doi: str, request: PublicationRequestedData, datasets: list[Dataset]
    ) -> list[dict[str, str]]:
        """Proposal DOI ↔ dataset DOIs of the same proposal, as the catalogue knows them now."""
        parents: list[PublishedData] = []
        parts: list[PublishedData] = []
        if request.proposal_id is None:
            proposal_ids = sorted({p for d in datasets for p in d.proposalIds})
            parents = await self.store.find_proposal_publications(proposal_ids)
        else:
            parts = await self.store.find_dataset_publications(request.proposal_id)
        return domain.catalogue_links(parents=parents, parts=parts, own_doi=doi)

    async def _at_datacite(self, doi: str, call: Awaitable[T]) -> T:
        """A refusal is recorded and dead-letters; an outage is recorded and retried."""
        try:
            return await call
        except RegistrationRefused as refused:
            await self.store.record_error(doi, refused.reason)
            raise Rejected(refused.reason, error_type="datacite-refused") from refused
        except DataCiteUnavailable as unavailable:
            await self.store.record_error(doi, str(unavailable))
            raise

    async def _announce_dataset(self, dataset: Dataset) -> None:
        await self.events.publish(
            domain.dataset_stored(dataset, source=self.settings.source),
            topic=CATALOGUE_DATASETS,
            key=dataset.pid,
        )
