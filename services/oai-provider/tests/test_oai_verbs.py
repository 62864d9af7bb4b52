"""The six verbs against the real MongoDB read model, records stamped at chosen times.

Every response is validated against the OAI-PMH, oai_dc, oai_datacite and DataCite XSDs by the
`Harvester` helper.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from oai_testkit import (
    BASE_URL,
    DAY,
    NOW,
    NS,
    REPOSITORY_IDENTIFIER,
    Harvester,
    error_codes,
    identifier,
    put,
    request_attributes,
    stored_record,
)

from scicat_oai_provider.domain import apply_content, withdrawn_content
from scicat_oai_provider.store import MongoOaiRecordStore
from scicat_schemas.runtime.settings import MongoSettings


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
