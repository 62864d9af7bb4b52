"""The six verbs against the real MongoDB read model, records stamped at chosen times.

Every response is validated against the OAI-PMH, oai_dc, oai_datacite and DataCite XSDs by the
`Harvester` helper.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from oai_testkit import (
    BASE_URL,
    NS,
    REPOSITORY_IDENTIFIER,
    Harvester,
    error_codes,
    header_ids,
    identifier,
    stored_record,
)

from scicat_oai_provider.domain import OaiRecord, apply_content, withdrawn_content
from scicat_oai_provider.store import MongoOaiRecordStore
from scicat_schemas.runtime.settings import MongoSettings

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
DAY = datetime(2024, 3, 10, tzinfo=UTC)


async def put(store: MongoOaiRecordStore, *records: OaiRecord) -> None:
    for record in records:
        current = await store.get(record.identifier)
        await store.save(
            record if current is None else _next_version(record, current),
            expected_version=current.version if current else None,
        )


def _next_version(record: OaiRecord, current: OaiRecord) -> OaiRecord:
    return replace(record, version=current.version + 1)


def request_attributes(root) -> dict[str, str]:  # type: ignore[no-untyped-def]
    request = root.find("oai:request", NS)
    assert request.text == BASE_URL
    return dict(request.attrib)


async def test_identify_describes_the_repository(store: MongoOaiRecordStore) -> None:
    await put(store, stored_record("10.5072/b", DAY + timedelta(hours=5)))
    await put(store, stored_record("10.5072/a", DAY + timedelta(hours=2)))
    root = await Harvester(store)(NOW, verb="Identify")
    identify = root.find("oai:Identify", NS)
    text = {child.tag.split("}")[1]: child.text for child in identify}
    assert text["baseURL"] == BASE_URL
    assert text["protocolVersion"] == "2.0"
    assert text["earliestDatestamp"] == "2024-03-10T02:00:00Z"
    assert text["deletedRecord"] == "persistent"
    assert text["granularity"] == "YYYY-MM-DDThh:mm:ssZ"
    assert text["compression"] == "gzip"
    description = identify.find("oai:description/oai-identifier:oai-identifier", NS)
    assert description.findtext("oai-identifier:repositoryIdentifier", namespaces=NS) == (
        "scicat.example.org"
    )
    assert root.findtext("oai:responseDate", namespaces=NS) == "2024-06-01T12:00:00Z"
    assert request_attributes(root) == {"verb": "Identify"}


async def test_identify_on_an_empty_store_gives_now_as_earliest_datestamp(
    store: MongoOaiRecordStore,
) -> None:
    root = await Harvester(store)(NOW + timedelta(microseconds=5), verb="Identify")
    assert root.findtext("oai:Identify/oai:earliestDatestamp", namespaces=NS) == (
        "2024-06-01T12:00:00Z"
    )


async def test_the_earliest_datestamp_is_kept_for_every_replica_and_lowered_by_writes(
    store: MongoOaiRecordStore, mongo_uri: str, database_name: str
) -> None:
    """Found once per store (a full read on the embedded MongoDB), then kept in the store."""
    settings = MongoSettings(uri=mongo_uri, database=database_name)
    await put(store, stored_record("10.5072/a", DAY))

    async def earliest_seen_by_a_new_replica() -> datetime | None:
        replica = MongoOaiRecordStore(settings)
        await replica.open()
        try:
            return await replica.earliest_datestamp()
        finally:
            await replica.close()

    assert await earliest_seen_by_a_new_replica() == DAY
    await put(store, stored_record("10.5072/b", DAY - timedelta(days=1)))
    await store.insert_many([stored_record("10.5072/c", DAY - timedelta(days=2))])
    await put(store, stored_record("10.5072/d", DAY + timedelta(days=1)))
    assert await earliest_seen_by_a_new_replica() == DAY - timedelta(days=2)


async def test_the_sets_of_the_records_are_kept_for_every_replica(
    store: MongoOaiRecordStore, mongo_uri: str, database_name: str
) -> None:
    """Kept in the store, because finding a record in a set reads every record on SecantusDB."""
    settings = MongoSettings(uri=mongo_uri, database=database_name)
    record = stored_record("10.5072/a", DAY)

    async def seen_by_a_new_replica() -> dict[str, str]:
        replica = MongoOaiRecordStore(settings)
        await replica.open()
        try:
            named = {entry.spec: entry.name for entry in await replica.set_entries()}
            assert bool(named) == await replica.has_sets()
            return named
        finally:
            await replica.close()

    assert await seen_by_a_new_replica() == {}
    never_shown = withdrawn_content(
        None,
        repository_identifier=REPOSITORY_IDENTIFIER,
        doi="10.5072/never-shown",
        publication_id="never-shown",
    )
    tombstone = apply_content(None, never_shown, event="withdrawn", now=DAY)
    assert tombstone is not None and tombstone.sets == ()
    await put(store, tombstone)
    assert await seen_by_a_new_replica() == {}
    await put(store, record)
    assert await seen_by_a_new_replica() == {entry.spec: entry.name for entry in record.sets}


async def test_bad_verb_and_bad_argument_echo_only_the_base_url(store: MongoOaiRecordStore) -> None:
    harvester = Harvester(store)
    bad_verb = await harvester(NOW, verb="Explode")
    assert error_codes(bad_verb) == ["badVerb"]
    assert request_attributes(bad_verb) == {}
    bad_argument = await harvester(NOW, verb="ListRecords", metadataPrefix="oai_dc", until="x")
    assert error_codes(bad_argument) == ["badArgument"]
    assert request_attributes(bad_argument) == {}


async def test_list_metadata_formats_for_repository_and_item(store: MongoOaiRecordStore) -> None:
    harvester = Harvester(store)
    await put(store, stored_record("10.5072/a", DAY))
    everything = await harvester(NOW, verb="ListMetadataFormats")
    prefixes = [e.text for e in everything.iterfind(".//oai:metadataFormat/oai:metadataPrefix", NS)]
    assert prefixes == ["oai_dc", "oai_datacite", "datacite"]
    item = await harvester(NOW, verb="ListMetadataFormats", identifier=identifier("10.5072/a"))
    assert len(item.findall(".//oai:metadataFormat", NS)) == 3
    schemas = {
        e.findtext("oai:metadataPrefix", namespaces=NS): e.findtext("oai:schema", namespaces=NS)
        for e in item.iterfind(".//oai:metadataFormat", NS)
    }
    assert schemas["oai_dc"] == "http://www.openarchives.org/OAI/2.0/oai_dc.xsd"
    unknown = await harvester(NOW, verb="ListMetadataFormats", identifier="oai:nope.org:1")
    assert error_codes(unknown) == ["idDoesNotExist"]
    assert request_attributes(unknown) == {
        "verb": "ListMetadataFormats",
        "identifier": "oai:nope.org:1",
    }


async def test_item_withdrawn_before_it_was_disseminated_has_no_metadata_formats(
    store: MongoOaiRecordStore,
) -> None:
    tombstone = apply_content(
        None,
        withdrawn_content(
            None, repository_identifier=REPOSITORY_IDENTIFIER, doi="10.5072/z", publication_id="z"
        ),
        event="e",
        now=DAY,
    )
    assert tombstone is not None
    await put(store, tombstone)
    root = await Harvester(store)(
        NOW, verb="ListMetadataFormats", identifier=identifier("10.5072/z")
    )
    assert error_codes(root) == ["noMetadataFormats"]


async def test_list_sets_needs_records_and_shows_the_hierarchy(store: MongoOaiRecordStore) -> None:
    harvester = Harvester(store)
    assert error_codes(await harvester(NOW, verb="ListSets")) == ["noSetHierarchy"]
    await put(store, stored_record("10.5072/a", DAY, instrument="P08"))
    await put(
        store, stored_record("10.5072/b", DAY, instrument="P10", proposal="999", beamtime="bt-9")
    )
    root = await harvester(NOW, verb="ListSets")
    specs = [e.text for e in root.iterfind(".//oai:setSpec", NS)]
    assert specs == [
        "facility",
        "facility:desy",
        "facility:desy:p08",
        "facility:desy:p10",
        "openaire_data",
        "proposal",
        "proposal:11012345",
        "proposal:11012345:bt-11012345",
        "proposal:999",
        "proposal:999:bt-9",
    ]
    names = {
        e.findtext("oai:setSpec", namespaces=NS): e.findtext("oai:setName", namespaces=NS)
        for e in root.iterfind(".//oai:set", NS)
    }
    assert names["facility"] == "Facilities"
    assert names["facility:desy"] == "Facility DESY"
    assert names["facility:desy:p08"] == "Instrument P08 at DESY"
    assert names["proposal:999"] == "Proposal 999"
    assert names["proposal:999:bt-9"] == "Beamtime bt-9 of proposal 999"
    described = {
        e.findtext("oai:setSpec", namespaces=NS): e.findtext(
            "oai:setDescription/oai_dc:dc/dc:description", namespaces=NS
        )
        for e in root.iterfind(".//oai:set", NS)
    }
    assert "facility:<facility>:<instrument>" in described["facility"]
    assert "proposal:<proposal>:<beamtime>" in described["proposal"]
    assert described["facility:desy:p08"] is None
    token = await harvester(NOW, verb="ListSets", resumptionToken="anything")
    assert error_codes(token) == ["badResumptionToken"]


async def test_get_record_in_each_format_and_its_errors(store: MongoOaiRecordStore) -> None:
    harvester = Harvester(store)
    await put(store, stored_record("10.5072/a", DAY))
    for prefix, root_tag in (
        ("oai_dc", "oai_dc:dc"),
        ("oai_datacite", "oai_datacite:oai_datacite"),
        ("datacite", "datacite:resource"),
    ):
        root = await harvester(
            NOW, verb="GetRecord", identifier=identifier("10.5072/a"), metadataPrefix=prefix
        )
        record = root.find("oai:GetRecord/oai:record", NS)
        assert record.findtext("oai:header/oai:identifier", namespaces=NS) == identifier(
            "10.5072/a"
        )
        assert record.find(f"oai:metadata/{root_tag}", NS) is not None
        assert "10.5072/a" in "".join(record.find("oai:metadata", NS).itertext())
    wrong_prefix = await harvester(
        NOW, verb="GetRecord", identifier=identifier("10.5072/a"), metadataPrefix="marc21"
    )
    assert error_codes(wrong_prefix) == ["cannotDisseminateFormat"]
    assert request_attributes(wrong_prefix)["metadataPrefix"] == "marc21"
    both = await harvester(NOW, verb="GetRecord", identifier="oai:x.org:1", metadataPrefix="x")
    assert sorted(error_codes(both)) == ["cannotDisseminateFormat", "idDoesNotExist"]


async def test_deleted_record_is_a_header_with_status_deleted(store: MongoOaiRecordStore) -> None:
    harvester = Harvester(store)
    await put(store, stored_record("10.5072/gone", DAY, deleted=True))
    got = await harvester(
        NOW, verb="GetRecord", identifier=identifier("10.5072/gone"), metadataPrefix="oai_dc"
    )
    record = got.find("oai:GetRecord/oai:record", NS)
    assert record.find("oai:header", NS).get("status") == "deleted"
    assert record.find("oai:metadata", NS) is None
    listed = await harvester(NOW, verb="ListRecords", metadataPrefix="datacite")
    [header] = listed.findall(".//oai:header", NS)
    assert header.get("status") == "deleted"
    assert [e.text for e in header.findall("oai:setSpec", NS)] == [
        "facility:desy:p08",
        "proposal:11012345:bt-11012345",
        "openaire_data",
    ]


async def test_paging_returns_every_record_exactly_once_with_cursor_and_size(
    store: MongoOaiRecordStore,
) -> None:
    dois = [f"10.5072/r{n:02d}" for n in range(10)]
    for n, doi in enumerate(dois):
        await put(store, stored_record(doi, DAY + timedelta(minutes=n // 3)))
    harvester = Harvester(store, page_size=3)
    headers, tokens = await harvester.harvest(NOW, "ListRecords", metadataPrefix="oai_dc")
    assert sorted(header_ids(headers)) == sorted(identifier(d) for d in dois)
    assert len(header_ids(headers)) == 10
    assert [(t.get("cursor"), t.get("completeListSize")) for t in tokens] == [
        ("0", "10"),
        ("3", "10"),
        ("6", "10"),
        ("9", "10"),
    ]
    assert all(t.get("expirationDate") for t in tokens[:-1])
    assert tokens[-1].text is None and tokens[-1].get("expirationDate") is None


async def test_a_single_complete_page_has_no_resumption_token(store: MongoOaiRecordStore) -> None:
    await put(store, stored_record("10.5072/a", DAY), stored_record("10.5072/b", DAY))
    root = await Harvester(store, page_size=2)(NOW, verb="ListIdentifiers", metadataPrefix="oai_dc")
    assert len(root.findall(".//oai:header", NS)) == 2
    assert root.find(".//oai:resumptionToken", NS) is None


async def test_a_resumption_token_can_be_replayed(store: MongoOaiRecordStore) -> None:
    for n in range(5):
        await put(store, stored_record(f"10.5072/r{n}", DAY + timedelta(seconds=n)))
    harvester = Harvester(store, page_size=2)
    first = await harvester(NOW, verb="ListIdentifiers", metadataPrefix="oai_dc")
    token = first.findtext(".//oai:resumptionToken", namespaces=NS)
    second = await harvester(NOW, verb="ListIdentifiers", resumptionToken=token)
    again = await harvester(NOW + timedelta(hours=1), verb="ListIdentifiers", resumptionToken=token)
    assert header_ids(second.iterfind(".//oai:header", NS)) == header_ids(
        again.iterfind(".//oai:header", NS)
    )
    assert request_attributes(second) == {"verb": "ListIdentifiers", "resumptionToken": token}


async def test_tampered_or_expired_token_is_bad_resumption_token(
    store: MongoOaiRecordStore,
) -> None:
    for n in range(3):
        await put(store, stored_record(f"10.5072/r{n}", DAY))
    harvester = Harvester(store, page_size=1)
    first = await harvester(NOW, verb="ListRecords", metadataPrefix="oai_dc")
    token = first.findtext(".//oai:resumptionToken", namespaces=NS)
    tampered = await harvester(NOW, verb="ListRecords", resumptionToken=token[:-3] + "xyz")
    assert error_codes(tampered) == ["badResumptionToken"]
    assert request_attributes(tampered)["resumptionToken"] == token[:-3] + "xyz"
    expired = await harvester(NOW + timedelta(days=2), verb="ListRecords", resumptionToken=token)
    assert error_codes(expired) == ["badResumptionToken"]


async def test_from_and_until_select_inclusively_by_day_and_by_second(
    store: MongoOaiRecordStore,
) -> None:
    await put(
        store,
        stored_record("10.5072/before", DAY - timedelta(seconds=1)),
        stored_record("10.5072/start", DAY),
        stored_record("10.5072/noon", DAY + timedelta(hours=12)),
        stored_record("10.5072/end", DAY + timedelta(days=1, seconds=-1)),
        stored_record("10.5072/after", DAY + timedelta(days=1)),
    )
    harvester = Harvester(store)

    async def selected(**window: str) -> list[str]:
        root = await harvester(NOW, verb="ListIdentifiers", metadataPrefix="oai_dc", **window)
        return [i.rsplit("/", 1)[1] for i in header_ids(root.iterfind(".//oai:header", NS))]

    assert await selected(**{"from": "2024-03-10", "until": "2024-03-10"}) == [
        "start",
        "noon",
        "end",
    ]
    assert await selected(until="2024-03-09") == ["before"]
    assert await selected(**{"from": "2024-03-11"}) == ["after"]
    assert await selected(**{"from": "2024-03-10T12:00:00Z", "until": "2024-03-10T23:59:59Z"}) == [
        "noon",
        "end",
    ]
    empty = await harvester(
        NOW, verb="ListIdentifiers", metadataPrefix="oai_dc", until="2020-01-01"
    )
    assert error_codes(empty) == ["noRecordsMatch"]


async def test_set_selection_includes_descendant_sets(store: MongoOaiRecordStore) -> None:
    harvester = Harvester(store)
    no_sets = await harvester(NOW, verb="ListIdentifiers", metadataPrefix="oai_dc", set="a")
    assert error_codes(no_sets) == ["noSetHierarchy"]
    await put(
        store,
        stored_record("10.5072/p08", DAY, instrument="P08"),
        stored_record("10.5072/p10", DAY, instrument="P10", proposal="777", beamtime="bt-7"),
    )

    async def selected(spec: str) -> list[str]:
        root = await harvester(NOW, verb="ListIdentifiers", metadataPrefix="oai_dc", set=spec)
        return sorted(i.rsplit("/", 1)[1] for i in header_ids(root.iterfind(".//oai:header", NS)))

    assert await selected("facility:desy:p08") == ["p08"]
    assert await selected("facility:desy") == ["p08", "p10"]
    assert await selected("facility") == ["p08", "p10"]
    assert await selected("proposal:777:bt-7") == ["p10"]
    assert await selected("proposal:777") == ["p10"]
    assert await selected("proposal") == ["p08", "p10"]
    assert await selected("openaire_data") == ["p08", "p10"]
    unknown = await harvester(NOW, verb="ListIdentifiers", metadataPrefix="oai_dc", set="x:y")
    assert error_codes(unknown) == ["noRecordsMatch"]


async def test_list_with_unknown_prefix_cannot_disseminate(store: MongoOaiRecordStore) -> None:
    await put(store, stored_record("10.5072/a", DAY))
    root = await Harvester(store)(NOW, verb="ListRecords", metadataPrefix="marc21")
    assert error_codes(root) == ["cannotDisseminateFormat"]


async def test_records_of_the_current_second_wait_for_the_next_harvest(
    store: MongoOaiRecordStore,
) -> None:
    await put(store, stored_record("10.5072/now", NOW))
    harvester = Harvester(store)
    now = await harvester(
        NOW + timedelta(milliseconds=500), verb="ListIdentifiers", metadataPrefix="oai_dc"
    )
    assert error_codes(now) == ["noRecordsMatch"]
    later = await harvester(
        NOW + timedelta(seconds=1), verb="ListIdentifiers", metadataPrefix="oai_dc"
    )
    assert header_ids(later.iterfind(".//oai:header", NS)) == [identifier("10.5072/now")]


async def test_records_changed_mid_harvest_are_neither_repeated_nor_lost(
    store: MongoOaiRecordStore,
) -> None:
    """The keyset over `(datestamp, id)` with `until` frozen at the first request.

    `delivered` changes after it was delivered: it is not delivered again. `pending` changes
    before it is reached: it leaves this list (its datestamp is past the frozen `until`) and is
    in the next incremental harvest, which starts from the first response's `responseDate`.
    Every unchanged record is delivered exactly once.
    """
    dois = [f"10.5072/r{n}" for n in range(6)]
    for n, doi in enumerate(dois):
        await put(store, stored_record(doi, DAY + timedelta(hours=n)))
    harvester = Harvester(store, page_size=2)
    first = await harvester(NOW, verb="ListIdentifiers", metadataPrefix="oai_dc")
    response_date = first.findtext("oai:responseDate", namespaces=NS)
    delivered_ids = header_ids(first.iterfind(".//oai:header", NS))
    assert delivered_ids == [identifier(dois[0]), identifier(dois[1])]
    changed_at = NOW + timedelta(minutes=1)
    await put(
        store,
        stored_record(dois[0], changed_at, instrument="P10"),
        stored_record(dois[4], changed_at, instrument="P10"),
    )
    token = first.findtext(".//oai:resumptionToken", namespaces=NS)
    later = NOW + timedelta(minutes=2)
    while token:
        page = await harvester(later, verb="ListIdentifiers", resumptionToken=token)
        delivered_ids += header_ids(page.iterfind(".//oai:header", NS))
        token = page.findtext(".//oai:resumptionToken", namespaces=NS)
    unchanged = [identifier(d) for d in dois if d not in (dois[0], dois[4])]
    assert sorted(delivered_ids) == sorted([identifier(dois[0]), *unchanged])
    assert len(delivered_ids) == len(set(delivered_ids))

    following = await harvester(
        later, verb="ListIdentifiers", metadataPrefix="oai_dc", **{"from": response_date}
    )
    assert sorted(header_ids(following.iterfind(".//oai:header", NS))) == sorted(
        [identifier(dois[0]), identifier(dois[4])]
    )
