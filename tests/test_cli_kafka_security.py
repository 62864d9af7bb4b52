"""The CLI reads Kafka TLS/SASL from `SCICAT_KAFKA_SECURITY__*`, and names a bad setting."""

from __future__ import annotations

from typer.testing import CliRunner

from scicat_pipeline.cli import app

RUN = ["--run-id", "scan_001", "--beamtime-id", "11012345", "--instrument", "P08"]


def test_an_incomplete_sasl_setting_exits_2_naming_the_variable_before_any_connection() -> None:
    result = CliRunner().invoke(
        app,
        ["emit", "run-started", *RUN, "--kafka", "127.0.0.1:1", "--source", "/desy/p08"],
        env={"SCICAT_KAFKA_SECURITY__PROTOCOL": "SASL_SSL", "COLUMNS": "250"},
    )
    assert result.exit_code == 2, result.output
    assert "SCICAT_KAFKA_SECURITY" in result.output
    assert "needs sasl_username and sasl_password" in result.output


def test_dlq_refuses_an_unknown_protocol_naming_the_variable() -> None:
    result = CliRunner().invoke(
        app,
        ["dlq", "list", "ingestor", "--kafka", "127.0.0.1:1"],
        env={"SCICAT_KAFKA_SECURITY__PROTOCOL": "KERBEROS", "COLUMNS": "250"},
    )
    assert result.exit_code == 2, result.output
    assert "SCICAT_KAFKA_SECURITY__PROTOCOL" in result.output
