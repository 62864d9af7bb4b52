"""The read-model projection: identifiers, sets, rendering via the shared mapping, datestamps."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree
from oai_testkit import REPOSITORY_IDENTIFIER, publication_record

from scicat_oai_provider.domain import (
    DATACITE,
    OAI_DATACITE,
    OAI_DC,
    InvalidPublication,
    SetEntry,
    apply_content,
    closed_until,
    oai_identifier,
    registered_content,
    slug,
    with_ancestors,
    withdrawn_content,
)
from scicat_oai_provider.sets import minimal_specs, publication_sets
from scicat_pipeline.testing.xsd import assert_valid
from scicat_schemas.datacite import (
    datacite_attributes,
    datacite_element,
    dublin_core_element,
    oai_datacite_element,
)
from scicat_schemas.documents import ProposalSummary

SET_SPEC = re.compile(r"([A-Za-z0-9\-_\.!~\*'\(\)])+(:[A-Za-z0-9\-_\.!~\*'\(\)]+)*")
NOW = datetime(2024, 5, 6, 7, 8, 9, 654_321, tzinfo=UTC)


def render(**overrides: object):  # type: ignore[no-untyped-def]
    return registered_content(
        publication_record(**overrides),  # type: ignore[arg-type]
        repository_identifier=REPOSITORY_IDENTIFIER,
        datacentre_symbol="DESY.SCICAT",
        facility="DESY",
    )


def test_identifier_keeps_slash_and_colon_and_escapes_other_reserved_characters() -> None:
    assert oai_identifier("scicat.example.org", "10.5072/abc:d/e") == (
        "oai:scicat.example.org:10.5072/abc:d/e"
    )
    assert oai_identifier("scicat.example.org", "10.5072/a b%c#ü") == (
        "oai:scicat.example.org:10.5072/a%20b%25c%23%C3%BC"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [("P08", "p08"), ("PSI/SLS cSAXS", "psi-sls-csaxs"), ("Möller lab", "moller-lab"), ("//", "")],
)
def test_slug_produces_set_spec_segments(value: str, expected: str) -> None:
    assert slug(value) == expected


def test_publication_sets_place_instruments_under_the_facility_and_beamtimes_under_proposals() -> (
    None
):
    content = registered_content(
        publication_record(instrument="P08", proposal="11012345", beamtime="BT 11019001"),
        repository_identifier=REPOSITORY_IDENTIFIER,
        datacentre_symbol="DESY.SCICAT",
        facility="DESY",
        proposal_parents={"BT 11019001": "11012345"},
    )
    specs = [s.spec for s in content.sets]
    assert specs == [
        "facility",
        "facility:desy",
        "facility:desy:p08",
        "proposal",
        "proposal:11012345",
        "proposal:11012345:bt-11019001",
        "openaire_data",
    ]
    assert all(SET_SPEC.fullmatch(spec) for spec in specs)
    assert SetEntry("facility:desy:p08", "Instrument P08 at DESY") in content.sets
    assert (
        SetEntry("proposal:11012345:bt-11019001", "Beamtime BT 11019001 of proposal 11012345")
        in content.sets
    )
    record = apply_content(None, content, event="e", now=NOW)
    assert record is not None
    assert record.set_specs == (
        "facility:desy:p08",
        "proposal:11012345:bt-11019001",
        "openaire_data",
    )


def test_proposal_ids_without_a_known_parent_are_proposals_of_their_own() -> None:
    content = render(proposal="11012345", beamtime="11019001")
    record = apply_content(None, content, event="e", now=NOW)
    assert record is not None
    assert record.set_specs == (
        "facility:desy:p08",
        "proposal:11012345",
        "proposal:11019001",
        "openaire_data",
    )


def test_set_hierarchy_names_the_parents_of_every_set() -> None:
    entries = with_ancestors(
        [SetEntry("facility:desy:p08", "Instrument P08 at DESY"), SetEntry("a:b:c", "C")]
    )
    assert [(e.spec, e.name) for e in entries] == [
        ("a", "a"),
        ("a:b", "a:b"),
        ("a:b:c", "C"),
        ("facility", "Facilities"),
        ("facility:desy", "facility:desy"),
        ("facility:desy:p08", "Instrument P08 at DESY"),
    ]


def test_every_format_is_the_shared_mapping_of_the_record_and_valid() -> None:
    record = publication_record(doi="10.5072/desy.abc")
    content = render(doi="10.5072/desy.abc")
    attributes = datacite_attributes(record)
    expected = {
        OAI_DC: dublin_core_element(attributes),
        OAI_DATACITE: oai_datacite_element(attributes, datacentre_symbol="DESY.SCICAT"),
        DATACITE: datacite_element(attributes),
    }
    assert content.identifier == "oai:scicat.example.org:10.5072/desy.abc"
    assert content.formats == (OAI_DC, OAI_DATACITE, DATACITE)
    for prefix, element in expected.items():
        stored = content.metadata[prefix]
        assert not stored.startswith("<?xml")
        assert stored == etree.tostring(element, encoding="unicode")
        assert "10.5072/desy.abc" in stored
        assert_valid(stored.encode())


def test_a_publication_without_a_doi_cannot_be_rendered() -> None:
    with pytest.raises(InvalidPublication, match="not a DOI"):
        render(doi="pending")


def test_a_withdrawal_without_a_doi_is_invalid() -> None:
    with pytest.raises(InvalidPublication, match="not a DOI"):
        withdrawn_content(
            None, repository_identifier=REPOSITORY_IDENTIFIER, doi=" ", publication_id="p"
        )


def test_a_creator_without_a_name_cannot_be_rendered() -> None:
    record = publication_record()
    record.publication.metadata["creators"] = [{"givenName": "Anna"}]
    with pytest.raises(InvalidPublication, match="creators need a `name`"):
        registered_content(
            record, repository_identifier="x.org", datacentre_symbol="D.S", facility="DESY"
        )


def test_new_record_is_stamped_when_stored_to_the_second() -> None:
    record = apply_content(None, render(), event="e1", now=NOW)
    assert record is not None
    assert record.datestamp == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert record.version == 1


def test_redelivered_event_changes_nothing() -> None:
    first = apply_content(None, render(), event="e1", now=NOW)
    assert apply_content(first, render(), event="e1", now=NOW + timedelta(hours=1)) is None


def test_another_event_with_identical_content_keeps_the_datestamp() -> None:
    first = apply_content(None, render(), event="e1", now=NOW)
    again = apply_content(first, render(), event="e2", now=NOW + timedelta(hours=1))
    assert again is not None and first is not None
    assert again.datestamp == first.datestamp
    assert again.version == first.version + 1


def test_changed_content_gets_a_new_datestamp() -> None:
    first = apply_content(None, render(), event="e1", now=NOW)
    later = NOW + timedelta(minutes=5)
    changed = apply_content(first, render(title="Corrected title"), event="e2", now=later)
    assert changed is not None
    assert changed.datestamp == later.replace(microsecond=0)
    assert "Corrected title" in changed.metadata[OAI_DC]


def test_an_older_event_replayed_after_a_newer_one_changes_nothing() -> None:
    first = apply_content(None, render(), event="e1", now=NOW)
    second = apply_content(first, render(title="New"), event="e2", now=NOW + timedelta(minutes=1))
    assert apply_content(second, render(), event="e1", now=NOW + timedelta(minutes=2)) is None


def test_datestamp_never_moves_back_when_the_clock_does() -> None:
    first = apply_content(None, render(), event="e1", now=NOW)
    changed = apply_content(first, render(title="New"), event="e2", now=NOW - timedelta(hours=1))
    assert changed is not None and first is not None
    assert changed.datestamp == first.datestamp


def test_withdrawal_keeps_header_sets_and_formats_but_drops_metadata() -> None:
    live = apply_content(None, render(doi="10.5072/w"), event="e1", now=NOW)
    tombstone = withdrawn_content(
        live, repository_identifier=REPOSITORY_IDENTIFIER, doi="10.5072/w", publication_id="pub-1"
    )
    deleted = apply_content(live, tombstone, event="e2", now=NOW + timedelta(days=1))
    assert deleted is not None and live is not None
    assert deleted.deleted
    assert deleted.metadata == {}
    assert deleted.sets == live.sets and deleted.formats == live.formats
    assert deleted.datestamp == (NOW + timedelta(days=1)).replace(microsecond=0)


def test_withdrawal_of_an_unknown_doi_is_a_tombstone_without_formats() -> None:
    tombstone = withdrawn_content(
        None, repository_identifier=REPOSITORY_IDENTIFIER, doi="10.5072/x", publication_id="p"
    )
    record = apply_content(None, tombstone, event="e1", now=NOW)
    assert record is not None
    assert record.deleted and record.formats == () and record.sets == ()


def test_lists_only_cover_seconds_that_have_fully_passed() -> None:
    assert closed_until(None, NOW) == datetime(2024, 5, 6, 7, 8, 8, tzinfo=UTC)
    past = datetime(2024, 1, 1, tzinfo=UTC)
    assert closed_until(past, NOW) == past
    assert closed_until(datetime(2099, 1, 1, tzinfo=UTC), NOW) == closed_until(None, NOW)


def test_a_proposal_doi_is_in_the_sets_of_its_beamtime_and_instruments() -> None:
    record = publication_record().model_copy(
        update={
            "datasets": [],
            "proposal": ProposalSummary(
                proposalId="11019001",
                type="Beamtime",
                parentProposalId="11012345",
                instrumentIds=["P08"],
            ),
        }
    )
    specs = minimal_specs(
        entry.spec for entry in publication_sets(record, facility="DESY", proposal_parents={})
    )
    assert specs == ("facility:desy:p08", "proposal:11012345:11019001", "openaire_data")
