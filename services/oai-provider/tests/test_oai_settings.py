"""Settings from `OAI_PROVIDER_*` environment variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from scicat_oai_provider.settings import Settings


def test_nested_variables_override_single_fields_and_keep_the_service_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OAI_PROVIDER_HTTP__HOST", "127.0.0.1")
    monkeypatch.setenv("OAI_PROVIDER_KAFKA__BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("OAI_PROVIDER_MONGO__DATABASE", "catalogue")
    monkeypatch.setenv("OAI_PROVIDER_PUBLIC_URL", "https://data.example.org/")
    monkeypatch.setenv("OAI_PROVIDER_PAGE_SIZE", "250")
    settings = Settings()
    assert (settings.http.host, settings.http.port) == ("127.0.0.1", 8004)
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.mongo.database == "catalogue"
    assert settings.base_url == "https://data.example.org/oai"
    assert settings.page_size == 250
    assert settings.uses_dev_token_secret


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("repository_identifier", "not a domain"),
        ("repository_identifier", "localhost"),
        ("admin_email", "nobody"),
        ("page_size", "0"),
    ],
)
def test_values_that_would_make_invalid_oai_pmh_are_refused(
    monkeypatch: pytest.MonkeyPatch, field: str, value: str
) -> None:
    monkeypatch.setenv(f"OAI_PROVIDER_{field.upper()}", value)
    with pytest.raises(ValidationError, match=field):
        Settings()
