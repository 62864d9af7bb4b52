"""The pure minting rules: DOI derivation, what is stored, what DataCite receives, what is said."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from scicat_doi_minter import domain
from scicat_doi_minter.settings import DataCiteSettings, Settings
from scicat_pipeline.testing.xsd import assert_valid
from scicat_schemas.documents import Dataset, PublishedData
from scicat_schemas.events import PublicationRequested

DOI_PATTERN = re.compile(r"^10\.\d{4,5}/[-._;()/:a-zA-Z0-9*~$=]+$")
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
LANDING = "https://doi.example.org/doi/10.5072/x"

MakeRequest = Callable[..., PublicationRequested]
MakeDataset = Callable[..., Dataset]


def pending(
    request: PublicationRequested, datasets: list[Dataset], existing: PublishedData | None = None
) -> PublishedData:
    return domain.pending_publication(
        request.data,
        doi=domain.doi_for("10.5072", request.data.publication_id),
        datasets=datasets,
        landing_page=LANDING,
        default_publisher="Deutsches Elektronen-Synchrotron DESY",
        existing=existing,
        now=NOW,
    )


# --- the DOI ------------------------------------------------------------------------------------


def test_suffix_is_the_same_for_the_same_publication_id() -> None:
    assert domain.doi_suffix("P08-11012345/Paper 1") == domain.doi_suffix("P08-11012345/Paper 1")


@pytest.mark.parametrize(
    "publication_id",
    ["P08-11012345/Paper 1", "Müller & Søn (2025)", "ünïcødé", "日本語", "a" * 300, "--"],
)
def test_suffix_is_lower_case_and_doi_safe(publication_id: str) -> None:
    suffix = domain.doi_suffix(publication_id)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", suffix)
    assert DOI_PATTERN.match(f"10.5072/{suffix}")
    assert len(suffix) <= 60


def test_suffix_keeps_a_readable_slug_of_the_id() -> None:
    assert domain.doi_suffix("P08-11012345/Paper 1").startswith("p08-11012345-paper-1-")


def test_ids_with_the_same_slug_get_different_suffixes() -> None:
    assert domain.doi_suffix("Run A") != domain.doi_suffix("run-a")


# --- datasets and conflicts ---------------------------------------------------------------------


def test_missing_datasets_are_refused_by_name(make_dataset: MakeDataset) -> None:
    with pytest.raises(domain.UnpublishableRequest, match="d/2, d/3"):
        domain.require_datasets(["d/1", "d/2", "d/3"], [make_dataset("d/1")])


def test_datasets_come_back_in_request_order_without_duplicates(make_dataset: MakeDataset) -> None:
    found = [make_dataset("d/2"), make_dataset("d/1")]
    assert [d.pid for d in domain.require_datasets(["d/1", "d/2", "d/1"], found)] == ["d/1", "d/2"]


def test_doi_of_another_publication_is_refused(
    make_request: MakeRequest, make_dataset: MakeDataset
) -> None:
    other = pending(make_request("other"), [make_dataset("d/1")])
    with pytest.raises(domain.UnpublishableRequest, match="belongs to publication 'other'"):
        domain.check_registrable(other, make_request("mine").data)


def test_withdrawn_publication_is_not_revived(
    make_request: MakeRequest, make_dataset: MakeDataset
) -> None:
    request = make_request("mine")
    withdrawn = pending(request, [make_dataset("d/1")]).model_copy(update={"status": "withdrawn"})
    with pytest.raises(domain.UnpublishableRequest, match="withdrawn"):
        domain.check_registrable(withdrawn, request.data)


# --- the stored document ------------------------------------------------------------------------


def test_pending_publication_carries_scicat_fields_and_datacite_creators(
    make_request: MakeRequest, make_dataset: MakeDataset
) -> None:
    request = make_request("pub", "d/1", "d/2", publisher=None)
    published = pending(request, [make_dataset("d/1"), make_dataset("d/2", size=500)])

    assert published.status == "public"
    assert published.registeredTime is None
    assert published.datasetPids == ["d/1", "d/2"]
    assert (published.numberOfFiles, published.sizeOfArchive) == (24, 1_500_000_500)
    assert published.metadata["publisher"] == "Deutsches Elektronen-Synchrotron DESY"
    assert published.metadata["publicationYear"] == 2025
    assert published.metadata["resourceType"] == {
        "resourceTypeGeneral": "Dataset",
        "resourceType": "Dataset",
    }
    assert published.metadata["license"] == "https://creativecommons.org/licenses/by/4.0/"
    jane = published.metadata["creators"][0]
    assert jane["nameType"] == "Personal"
    assert jane["nameIdentifiers"][0]["nameIdentifier"] == "https://orcid.org/0000-0002-1825-0097"
    assert jane["affiliation"][0]["affiliationIdentifier"] == "https://ror.org/01js2sh04"


def test_requested_publisher_wins_over_the_default(
    make_request: MakeRequest, make_dataset: MakeDataset
) -> None:
    published = pending(make_request(publisher="European Spallation Source"), [make_dataset("d")])
    assert published.metadata["publisher"] == "European Spallation Source"


def test_first_registration_is_dated_now(
    make_request: MakeRequest, make_dataset: MakeDataset
) -> None:
    record = domain.registered_record(
        pending(make_request(), [make_dataset("d")]), [], existing=None, now=NOW
    )
    assert (record.publication.status, record.publication.registeredTime) == ("registered", NOW)


def test_registered_publication_keeps_its_first_registration_time_and_status(
    make_request: MakeRequest, make_dataset: MakeDataset
) -> None:
    first = datetime(2024, 1, 2, tzinfo=UTC)
    request = make_request()
    existing = pending(request, [make_dataset("d")]).model_copy(
        update={"status": "amended", "registeredTime": first}
    )
    record = domain.registered_record(
        pending(request, [make_dataset("d")], existing), [], existing=existing, now=NOW
    )
    assert (record.publication.status, record.publication.registeredTime) == ("amended", first)


@pytest.mark.parametrize(("change", "status"), [({}, "registered"), ({"title": "New"}, "amended")])
def test_registered_publication_becomes_amended_only_when_its_metadata_changes(
    make_request: MakeRequest, make_dataset: MakeDataset, change: dict[str, Any], status: str
) -> None:
    existing = pending(make_request(), [make_dataset("d")]).model_copy(
        update={"status": "registered", "registeredTime": NOW}
    )
    again = pending(make_request(**change), [make_dataset("d")], existing)
    record = domain.registered_record(again, [], existing=existing, now=NOW)
    assert record.publication.status == status


# --- what DataCite receives ---------------------------------------------------------------------


def registration(request: PublicationRequested, datasets: list[Dataset]) -> dict[str, Any]:
    published = pending(request, datasets)
    summaries = [domain.dataset_summary(d) for d in datasets]
    record = domain.registered_record(published, summaries, existing=None, now=NOW)
    attributes: dict[str, Any] = domain.registration_attributes(record, landing_page=LANDING)
    return attributes


def test_registration_publishes_complete_metadata_with_the_landing_page(
    make_request: MakeRequest, make_dataset: MakeDataset
) -> None:
    attributes = registration(make_request("pub", "d/1"), [make_dataset("d/1")])

    assert attributes["event"] == "publish"
    assert attributes["url"] == LANDING
    assert attributes["doi"] == domain.doi_for("10.5072", "pub")
    assert attributes["types"]["resourceTypeGeneral"] == "Dataset"
    assert {"date": "2025-06-01", "dateType": "Issued"} in attributes["dates"]
    assert attributes["alternateIdentifiers"][0]["alternateIdentifier"] == "d/1"


def test_registration_xml_is_valid_kernel_4_of_the_same_metadata(
    make_request: MakeRequest, make_dataset: MakeDataset
) -> None:
    attributes = registration(make_request("pub", "d/1"), [make_dataset("d/1")])
    resource = assert_valid(base64.b64decode(attributes["xml"]))
    ns = {"d": "http://datacite.org/schema/kernel-4"}
    assert resource.findtext("d:identifier", namespaces=ns) == attributes["doi"]
    assert resource.findtext("d:titles/d:title", namespaces=ns) == (
        "Strain relaxation in <Ni> & Fe thin films"
    )


def test_record_the_mapping_cannot_render_is_unpublishable(
    make_request: MakeRequest, make_dataset: MakeDataset
) -> None:
    published = pending(make_request("pub"), [make_dataset("d")])
    published.metadata["creators"] = []
    record = domain.registered_record(published, [], existing=None, now=NOW)
    with pytest.raises(domain.UnpublishableRequest, match="missing creators"):
        domain.registration_attributes(record, landing_page=LANDING)


# --- events -------------------------------------------------------------------------------------


def test_dataset_stored_id_repeats_with_the_revision(make_dataset: MakeDataset) -> None:
    event = domain.dataset_stored(make_dataset("d/1", pipelineRevision=4), source="/m")
    assert (event.id, event.source, event.data.dataset.pid) == ("d/1#4", "/m", "d/1")


def test_registered_event_id_is_stable_per_request_and_new_per_request(
    make_request: MakeRequest, make_dataset: MakeDataset
) -> None:
    request, later = make_request("pub"), make_request("pub")
    record = domain.registered_record(
        pending(request, [make_dataset("d")]), [], existing=None, now=NOW
    )

    first = domain.publication_registered(record, source="/m", request=request)
    again = domain.publication_registered(record, source="/m", request=request)
    update = domain.publication_registered(record, source="/m", request=later)

    assert first.id == again.id
    assert first.id != update.id
    assert first.id.startswith(f"{record.publication.doi}#registered")


# --- settings -----------------------------------------------------------------------------------


def test_settings_refuse_retries_longer_than_the_poll_interval_allows() -> None:
    datacite = DataCiteSettings(
        username="u", password=SecretStr("p"), timeout_seconds=60, max_attempts=5
    )
    with pytest.raises(ValidationError, match="max_poll_interval_ms"):
        Settings(datacite=datacite)


def test_no_backoff_exceeds_what_the_poll_interval_budget_assumes() -> None:
    from scicat_doi_minter.registrar import DataCiteClient

    datacite = DataCiteSettings(username="u", password=SecretStr("p"))
    client = DataCiteClient(datacite, user_agent="test")
    delays = [
        client.backoff(attempt, retry_after)
        for attempt in range(1, datacite.max_attempts)
        for retry_after in (None, 0.0, 3600.0)
    ]
    assert max(delays) <= datacite.backoff_max_seconds  # Retry-After is honoured up to the cap
    all_timeouts = datacite.max_attempts * datacite.timeout_seconds
    longest_waits = sorted(delays)[-(datacite.max_attempts - 1) :]
    assert datacite.worst_case_seconds() >= all_timeouts + sum(longest_waits)
    poll_interval_seconds = Settings(datacite=datacite).kafka.max_poll_interval_ms / 1000
    assert datacite.worst_case_seconds() <= poll_interval_seconds / 2


def test_settings_read_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOI_MINTER_DATACITE__USERNAME", "DESY.SCICAT")
    monkeypatch.setenv("DOI_MINTER_DATACITE__PASSWORD", "secret")
    monkeypatch.setenv("DOI_MINTER_DATACITE__PREFIX", "10.80101")
    monkeypatch.setenv("DOI_MINTER_KAFKA__BOOTSTRAP_SERVERS", "kafka:9092")
    settings = Settings()  # type: ignore[call-arg]
    assert settings.datacite.prefix == "10.80101"
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.http.port == 8003
    assert "secret" not in repr(settings)


def test_setting_only_the_http_host_keeps_the_services_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOI_MINTER_DATACITE__USERNAME", "DESY.SCICAT")
    monkeypatch.setenv("DOI_MINTER_DATACITE__PASSWORD", "secret")
    monkeypatch.setenv("DOI_MINTER_HTTP__HOST", "127.0.0.1")
    http = Settings().http  # type: ignore[call-arg]
    assert (http.host, http.port, http.public_url) == ("127.0.0.1", 8003, "http://localhost:8003")


def test_settings_refuse_a_malformed_prefix() -> None:
    with pytest.raises(ValidationError, match="not a DOI prefix"):
        DataCiteSettings(username="u", password=SecretStr("p"), prefix="10.5072/")
