"""Real harvesting clients over real HTTP: Sickle and oaipmh-scythe take the whole repository.

1,050 records (seeded through the store for volume), 100 per page: every format, every level of
the set hierarchy, then a harvest during which records are added and withdrawn (through the
service's event handler), then the incremental harvest from the first one's `responseDate`.
Every page either client receives is validated against the XSDs, envelope and metadata.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from oai_testkit import (
    REPOSITORY_IDENTIFIER,
    clone_record,
    identifier,
    oai_xml,
    publication_record,
    registered_event,
    stored_record,
    withdrawn_event,
)
from oaipmh_scythe import HTTPConfig, Scythe
from sickle import Sickle

from scicat_oai_provider.domain import OaiRecord, to_seconds
from scicat_oai_provider.handlers import PublicationHandler
from scicat_oai_provider.store import MongoOaiRecordStore
from scicat_pipeline.testing import wait_for
from scicat_schemas.events import CloudEvent, encode

RECORDS = 1_050
FORMATS = ("oai_dc", "oai_datacite", "datacite")
PROPOSALS = {"11012345": "11019001", "11099999": "11099001"}
"""Proposal → its beamtime (the test records say the beamtime's parent, as `Proposal` would)."""
SETS = (
    "facility",
    "facility:desy:p08",
    "facility:desy:p10",
    "proposal:11012345",
    "proposal:11012345:11019001",
    "proposal:11099999:11099001",
    "openaire_data",
)
OAI_NS = "{http://www.openarchives.org/OAI/2.0/}"


def layout(n: int) -> tuple[str, str]:
    """Record `n`'s instrument and proposal: both alternate, so every set has a share."""
    return ("P08" if n % 2 == 0 else "P10"), ("11099999" if n % 3 == 0 else "11012345")


def sets_of(n: int) -> set[str]:
    instrument, proposal = layout(n)
    beamtime = PROPOSALS[proposal]
    return {
        "facility",
        "facility:desy",
        f"facility:desy:{instrument.lower()}",
        "proposal",
        f"proposal:{proposal}",
        f"proposal:{proposal}:{beamtime}",
        "openaire_data",
    }


def doi(n: int) -> str:
    return f"10.5072/desy.harvest-{n:05d}"


async def seed(store: MongoOaiRecordStore, start: datetime) -> dict[str, set[str]]:
    """RECORDS records, two per second from `start`; returns identifier → its sets."""
    templates = {
        (instrument, proposal): stored_record(
            f"10.5072/desy.template-{instrument}-{proposal}",
            start,
            instrument=instrument,
            proposal=proposal,
            beamtime=PROPOSALS[proposal],
        )
        for instrument in ("P08", "P10")
        for proposal in PROPOSALS
    }
    records: list[OaiRecord] = [
        clone_record(templates[layout(n)], doi(n), start + timedelta(seconds=n // 2))
        for n in range(RECORDS)
    ]
    await store.insert_many(records)
    return {identifier(doi(n)): sets_of(n) for n in range(RECORDS)}


@dataclass
class Pages:
    """What the client received, page by page: validated, dated, and a hook between pages."""

    response_dates: list[str] = field(default_factory=list)
    between_pages: Callable[[int], None] | None = None

    def received(self, raw: str) -> None:
        root = oai_xml(raw.encode())
        self.response_dates.append(root.findtext(f"{OAI_NS}responseDate") or "")
        if self.between_pages is not None:
            self.between_pages(len(self.response_dates))


class ValidatingSickle(Sickle):  # type: ignore[misc]
    def __init__(self, endpoint: str, pages: Pages) -> None:
        super().__init__(endpoint, max_retries=0, timeout=30)
        self.pages = pages

    def harvest(self, **kwargs: Any) -> Any:
        response = super().harvest(**kwargs)
        self.pages.received(response.raw)
        return response


class ValidatingScythe(Scythe):
    """Harvests with POST, so a real client exercises the form-encoded binding too."""

    def __init__(self, endpoint: str, pages: Pages) -> None:
        super().__init__(endpoint, http_config=HTTPConfig(http_method="POST", timeout=30))
        self.pages = pages

    def harvest(self, query: dict[str, str]) -> Any:
        response = super().harvest(query)
        self.pages.received(response.raw)
        return response


Harvested = list[tuple[str, bool]]


def with_sickle(base_url: str, pages: Pages, *, prefix: str, **selection: str) -> Harvested:
    client = ValidatingSickle(base_url, pages)
    renamed = {"from" if key == "from_" else key: value for key, value in selection.items()}
    arguments = {"metadataPrefix": prefix} | renamed
    return [(r.header.identifier, r.deleted) for r in client.ListRecords(**arguments)]


def with_scythe(base_url: str, pages: Pages, *, prefix: str, **selection: str) -> Harvested:
    with ValidatingScythe(base_url, pages) as client:
        records = client.list_records(
            metadata_prefix=prefix, set_=selection.get("set"), from_=selection.get("from_")
        )
        return [(r.header.identifier, r.deleted) for r in records]  # type: ignore[union-attr]


HARVESTERS = {"sickle": with_sickle, "oaipmh-scythe": with_scythe}


def exactly_once(harvested: Harvested) -> list[str]:
    identifiers = [i for i, _ in harvested]
    assert len(identifiers) == len(set(identifiers)), "a record was delivered twice"
    return sorted(identifiers)


@pytest.mark.parametrize("client", sorted(HARVESTERS))
async def test_harvesters_take_every_record_in_every_format_and_set_while_records_change(
    client: str, store: MongoOaiRecordStore, oai_base_url: str
) -> None:
    harvest = HARVESTERS[client]
    expected = await seed(store, to_seconds(datetime.now(UTC)) - timedelta(days=1))

    async def run(pages: Pages, **arguments: str) -> Harvested:
        return await asyncio.to_thread(harvest, oai_base_url, pages, **arguments)  # type: ignore[arg-type]

    for prefix in FORMATS:
        pages = Pages()
        harvested = await run(pages, prefix=prefix)
        assert exactly_once(harvested) == sorted(expected)
        assert not any(deleted for _, deleted in harvested)
        assert len(pages.response_dates) == 11
    for n, spec in enumerate(SETS):
        harvested = await run(Pages(), prefix=FORMATS[n % len(FORMATS)], set=spec)
        assert exactly_once(harvested) == sorted(i for i, s in expected.items() if spec in s)

    handler = PublicationHandler(
        store=store,
        repository_identifier=REPOSITORY_IDENTIFIER,
        datacentre_symbol="DESY.SCICAT",
        facility="DESY",
        proposals=store,
    )
    delivered_then_withdrawn, withdrawn_before_delivery = doi(10), doi(1_000)
    added = [f"10.5072/desy.added-{n}" for n in range(5)]
    changed_at: list[datetime] = []
    loop = asyncio.get_running_loop()

    async def change_records() -> None:
        events: list[CloudEvent] = [
            withdrawn_event(delivered_then_withdrawn, "harvest-00010"),
            withdrawn_event(withdrawn_before_delivery, "harvest-01000"),
            *(registered_event(publication_record(doi=d, publication_id=d)) for d in added),
        ]
        for event in events:
            await handler.handle(
                SimpleNamespace(value=encode(event), topic="catalogue.publications", offset=0)  # type: ignore[arg-type]
            )
        changed_at.append(datetime.now(UTC))

    def after_third_page(page: int) -> None:
        if page == 3:
            assert threading.current_thread() is not threading.main_thread()
            asyncio.run_coroutine_threadsafe(change_records(), loop).result(timeout=30)

    during = Pages(between_pages=after_third_page)
    harvested = await run(during, prefix="oai_dc")
    assert changed_at, "the records changed during the harvest"
    assert exactly_once(harvested) == sorted(
        set(expected) - {identifier(withdrawn_before_delivery)}
    ), "every record that existed and was not changed before its turn arrives exactly once"
    assert not any(deleted for _, deleted in harvested)

    await wait_for(lambda: _passed(changed_at[0]), what="the second of the changes to be over")
    incremental = await run(Pages(), prefix="oai_dc", from_=during.response_dates[0])
    assert sorted(incremental) == sorted(
        [
            (identifier(delivered_then_withdrawn), True),
            (identifier(withdrawn_before_delivery), True),
            *((identifier(d), False) for d in added),
        ]
    )


async def _passed(moment: datetime) -> bool:
    return datetime.now(UTC) >= to_seconds(moment) + timedelta(seconds=1)
