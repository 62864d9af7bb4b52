"""The handler on the real read model: which publication events change it, which are refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from oai_testkit import REPOSITORY_IDENTIFIER, identifier, publication_record, registered_event

from scicat_oai_provider.handlers import PublicationHandler
from scicat_oai_provider.store import MongoOaiRecordStore
from scicat_schemas.events import encode
from scicat_schemas.runtime.consumer import Rejected

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def handler(store: MongoOaiRecordStore) -> PublicationHandler:
    return PublicationHandler(
        store=store,
        repository_identifier=REPOSITORY_IDENTIFIER,
        datacentre_symbol="DESY.SCICAT",
        facility="DESY",
        proposals=store,
        clock=lambda: NOW,
    )


def message(value: bytes) -> Any:
    return SimpleNamespace(value=value, topic="catalogue.publications", offset=7)


def event_of_type(event_type: str) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": "e-1",
            "source": "/scicat/doi-minter",
            "type": event_type,
            "time": "2024-06-01T12:00:00Z",
            "data": {"publication_id": "pub-1"},
        }
    ).encode()


async def test_publication_event_types_unknown_here_are_acknowledged_without_effect(
    store: MongoOaiRecordStore,
) -> None:
    await handler(store).handle(message(event_of_type("publication.reviewed")))
    assert await store.earliest_datestamp() is None


async def test_other_unknown_event_types_on_the_topic_are_refused(
    store: MongoOaiRecordStore,
) -> None:
    with pytest.raises(Rejected) as refused:
        await handler(store).handle(message(event_of_type("dataset.stored.v2")))
    assert refused.value.error_type == "unknown-type"


async def test_registered_publication_is_stored_with_every_format(
    store: MongoOaiRecordStore,
) -> None:
    record = publication_record(doi="10.5072/desy.h-1")
    await handler(store).handle(message(encode(registered_event(record))))
    stored = await store.get(identifier("10.5072/desy.h-1"))
    assert stored is not None
    assert stored.datestamp == NOW
    assert set(stored.metadata) == {"oai_dc", "oai_datacite", "datacite"}


async def test_an_amended_publication_is_re_rendered_with_a_new_datestamp(
    store: MongoOaiRecordStore,
) -> None:
    """The doi-minter announces an amendment as another `publication.registered` (`amended`)."""
    record = publication_record(doi="10.5072/desy.h-2")
    events = handler(store)
    await events.handle(message(encode(registered_event(record))))
    amended = record.model_copy(
        update={
            "publication": record.publication.model_copy(
                update={"status": "amended", "title": "Operando XRD of Li-ion cathodes, corrected"}
            )
        }
    )
    events.clock = lambda: NOW + timedelta(days=3)
    await events.handle(message(encode(registered_event(amended))))
    stored = await store.get(identifier("10.5072/desy.h-2"))
    assert stored is not None
    assert stored.datestamp == NOW + timedelta(days=3)
    assert "corrected" in stored.metadata["oai_dc"] and "corrected" in stored.metadata["datacite"]
