"""List verbs against the real MongoDB read model: paging, resumption tokens, from/until, sets,
and harvests while records change.

Every response is validated against the OAI-PMH and metadata-format XSDs by `Harvester`.
"""

from __future__ import annotations

from datetime import timedelta

from oai_testkit import (
    DAY,
    NOW,
    NS,
    Harvester,
    error_codes,
    header_ids,
    identifier,
    put,
    request_attributes,
    stored_record,
)

from scicat_oai_provider.store import MongoOaiRecordStore


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
