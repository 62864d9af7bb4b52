"""docker-compose.yml cannot run on these machines (no Docker engine); this keeps it correct."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from scicat_schemas.topics import ALL_TOPICS

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = {
    "ingestor": ("scicat_ingestor", "INGESTOR_"),
    "indexer": ("scicat_indexer", "INDEXER_"),
    "doi-minter": ("scicat_doi_minter", "DOI_MINTER_"),
    "oai-provider": ("scicat_oai_provider", "OAI_PROVIDER_"),
}


def test_every_contract_and_dead_letter_topic_is_created() -> None:
    script = " ".join(COMPOSE["services"]["kafka-topics"]["command"])
    words = set(re.findall(r"[\w.-]+", script))
    missing = [topic for topic in ALL_TOPICS if topic not in words]
    assert not missing, f"docker-compose.yml does not create {missing}"


def _field_exists(model: type[BaseModel], path: list[str]) -> bool:
    field = model.model_fields.get(path[0].lower())
    if field is None:
        return False
    if len(path) == 1:
        return True
    nested: Any = field.annotation
    return (
        isinstance(nested, type)
        and issubclass(nested, BaseModel)
        and _field_exists(nested, path[1:])
    )


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_service_variable_names_a_settings_field(service: str) -> None:
    package, prefix = SERVICES[service]
    settings = importlib.import_module(f"{package}.settings").Settings
    spec = COMPOSE["services"][service]
    assert spec["build"]["args"] == {"SERVICE": service, "MODULE": package}
    unknown = [
        name
        for name in spec["environment"]
        if not name.startswith(prefix)
        or not _field_exists(settings, name[len(prefix) :].split("__"))
    ]
    assert not unknown, f"{service}: {unknown} match no field of {package}.settings.Settings"


def test_every_service_image_builds_from_its_workspace_member() -> None:
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    for service in SERVICES:
        assert (ROOT / "services" / service / "pyproject.toml").exists()
    assert "--package scicat-${SERVICE}" in dockerfile


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_service_that_reads_mongodb_is_told_where_it_is(service: str) -> None:
    """A service left on its `localhost` default would fail only once deployed."""
    package, prefix = SERVICES[service]
    settings = importlib.import_module(f"{package}.settings").Settings
    if "mongo" not in settings.model_fields:
        pytest.skip(f"{service} does not read MongoDB")
    spec = COMPOSE["services"][service]
    assert f"{prefix}MONGO__URI" in spec["environment"]
    assert spec["depends_on"]["mongodb"] == {"condition": "service_healthy"}
