"""docker-compose.yml cannot run on these machines (no Docker engine); this keeps it correct."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from deployment_support import SERVICES, reads_mongodb, unknown_variables

from scicat_schemas.topics import ALL_TOPICS

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_contract_and_dead_letter_topic_is_created() -> None:
    script = " ".join(COMPOSE["services"]["kafka-topics"]["command"])
    words = set(re.findall(r"[\w.-]+", script))
    missing = [topic for topic in ALL_TOPICS if topic not in words]
    assert not missing, f"docker-compose.yml does not create {missing}"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_service_variable_names_a_settings_field(service: str) -> None:
    package, _ = SERVICES[service]
    spec = COMPOSE["services"][service]
    assert spec["build"]["args"] == {"SERVICE": service, "MODULE": package}
    unknown = unknown_variables(
        service, [name for name in spec["environment"] if not name.startswith("OTEL_")]
    )
    assert not unknown, f"{service}: {unknown} match no field of {package}.settings.Settings"


def test_every_service_image_builds_from_its_workspace_member() -> None:
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    for service in SERVICES:
        assert (ROOT / "services" / service / "pyproject.toml").exists()
    assert "--package scicat-${SERVICE}" in dockerfile


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_service_that_reads_mongodb_is_told_where_it_is(service: str) -> None:
    """A service left on its `localhost` default would fail only once deployed."""
    if not reads_mongodb(service):
        pytest.skip(f"{service} does not read MongoDB")
    _, prefix = SERVICES[service]
    spec = COMPOSE["services"][service]
    assert f"{prefix}MONGO__URI" in spec["environment"]
    assert spec["depends_on"]["mongodb"] == {"condition": "service_healthy"}
