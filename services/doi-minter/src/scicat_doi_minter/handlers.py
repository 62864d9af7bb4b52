"""`catalogue.publications` → a findable DOI, published datasets, and the events that say so.

The order of effects is the point of this module:
1. store the PublishedData (status `public`) before calling DataCite, so a DOI DataCite knows is
   never unknown to us;
2. `PUT /dois/{doi}` with `event: publish`;
3. only then flip the datasets to `isPublished` and announce them (`dataset.stored`);
4. mark the PublishedData `registered` and announce it (`publication.registered`);
5. return, and only then is the message acknowledged.
Every step is idempotent, so a crash anywhere followed by redelivery converges and re-announces.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import ConsumerRecord
from pydantic import ValidationError

from scicat_doi_minter import domain
from scicat_doi_minter.publishing import EventPublisher
from scicat_doi_minter.registrar import DataCiteUnavailable, DoiRegistrar, RegistrationRefused
from scicat_doi_minter.settings import Settings
from scicat_doi_minter.store import PublicationStore, StoredDatasetInvalid
from scicat_schemas.events import PUBLICATION_EVENT, PublicationRequested
from scicat_schemas.runtime.consumer import Rejected, rejected_from_validation
from scicat_schemas.topics import CATALOGUE_DATASETS, CATALOGUE_PUBLICATIONS

log = structlog.get_logger("scicat.doi_minter")


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
        """`publication.requested` is work; `registered`/`withdrawn` are our own output, ignored."""
        try:
            event = PUBLICATION_EVENT.validate_json(record.value or b"")
        except ValidationError as error:
            raise rejected_from_validation(error, what="publication event") from error
        if not isinstance(event, PublicationRequested):
            return
        with structlog.contextvars.bound_contextvars(
            event_id=event.id, publication_id=event.data.publication_id
        ):
            await self.mint(event)

    async def mint(self, event: PublicationRequested) -> None:
        request = event.data
        doi = domain.doi_for(self.settings.datacite.prefix, request.publication_id)
        landing_page = self.settings.landing_page(doi)
        now = datetime.now(UTC)
        try:  # everything is decided before the first write, so a refusal leaves no trace
            found = await self.store.find_datasets(request.dataset_pids)
            datasets = domain.require_datasets(request.dataset_pids, found)
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
            )
            summaries = [domain.dataset_summary(d) for d in datasets]
            record = domain.registered_record(pending, summaries, existing=existing, now=now)
            attributes = domain.registration_attributes(record, landing_page=landing_page)
        except (domain.UnpublishableRequest, StoredDatasetInvalid) as error:
            raise Rejected(str(error), error_type="unpublishable") from error

        await self.store.save_pending(pending, summaries)
        try:
            await self.registrar.publish(doi, attributes)
        except RegistrationRefused as refused:
            await self.store.record_error(doi, refused.reason)
            raise Rejected(refused.reason, error_type="datacite-refused") from refused
        except DataCiteUnavailable as unavailable:
            await self.store.record_error(doi, str(unavailable))
            raise

        for dataset in await self.store.mark_datasets_published(pending.datasetPids, at=now):
            await self.events.publish(
                domain.dataset_stored(dataset, source=self.settings.source),
                topic=CATALOGUE_DATASETS,
                key=dataset.pid,
            )
        await self.store.save_registered(record.publication, summaries)
        await self.events.publish(
            domain.publication_registered(record, source=self.settings.source, request=event),
            topic=CATALOGUE_PUBLICATIONS,
            key=request.publication_id,
        )
        log.info("publication registered", doi=doi, datasets=len(datasets))
