"""Settings come from `INDEXER_*` variables, with `__` for nested values."""

from __future__ import annotations

import pytest

from scicat_indexer.settings import Settings


def test_defaults_serve_on_port_8002_against_a_local_opensearch() -> None:
    settings = Settings()
    assert settings.http.port == 8002
    assert settings.opensearch.url == "http://localhost:9200"
    assert settings.opensearch.alias == "datasets"
    assert settings.opensearch.verify_certs


def test_nested_variables_override_single_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INDEXER_HTTP__HOST", "127.0.0.1")
    monkeypatch.setenv("INDEXER_OPENSEARCH__URL", "https://search.desy.de:9200")
    monkeypatch.setenv("INDEXER_OPENSEARCH__PASSWORD", "s3cret")
    monkeypatch.setenv("INDEXER_KAFKA__BOOTSTRAP_SERVERS", "kafka-1:9092")
    settings = Settings()
    assert (settings.http.host, settings.http.port) == ("127.0.0.1", 8002)
    assert settings.opensearch.url == "https://search.desy.de:9200"
    assert settings.opensearch.password is not None
    assert settings.opensearch.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.kafka.bootstrap_servers == "kafka-1:9092"


def test_port_variable_wins_over_the_service_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INDEXER_HTTP__PORT", "9102")
    assert Settings().http.port == 9102
