"""Settings read from `INGESTOR_*` variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from scicat_ingestor.settings import Settings
from scicat_schemas.runtime.settings import HttpSettings


def test_nested_variables_are_read_and_the_ingestor_port_is_kept(monkeypatch) -> None:
    monkeypatch.setenv("INGESTOR_KAFKA__BOOTSTRAP_SERVERS", "kafka-1:9092")
    monkeypatch.setenv("INGESTOR_MONGO__DATABASE", "catalogue")
    monkeypatch.setenv("INGESTOR_HTTP__HOST", "127.0.0.1")
    monkeypatch.setenv("INGESTOR_PID_PREFIX", "20.500.12269")
    monkeypatch.setenv("INGESTOR_ACCESS_GROUP_TEMPLATES", '["{beamline}staff"]')

    settings = Settings()

    assert settings.kafka.bootstrap_servers == "kafka-1:9092"
    assert settings.mongo.database == "catalogue"
    assert (settings.http.host, settings.http.port) == ("127.0.0.1", 8001)
    assert settings.pid_prefix == "20.500.12269"
    assert settings.access_group_templates == ["{beamline}staff"]


def test_defaults_match_the_desy_conventions() -> None:
    settings = Settings()

    assert settings.http.port == 8001
    assert settings.source == "/scicat-pipeline/ingestor"
    assert settings.owner_group_template == "{beamtime_id}-dmgt"
    assert settings.access_group_templates[-1] == "{beamline}staff"


def test_http_settings_given_as_a_model_are_taken_as_they_are() -> None:
    assert Settings(http=HttpSettings(port=9000)).http.port == 9000


@pytest.mark.parametrize("template", ["{proposal}-dmgt", "{0}", "{beamtime_id"])
def test_unusable_group_template_stops_the_service_at_start(template) -> None:
    with pytest.raises(ValidationError, match="placeholders available"):
        Settings(access_group_templates=[template])
