"""What the deployment files (docker-compose.yml, deploy/k8s) are checked against: the services'
own settings classes, so a renamed setting breaks a test instead of a deployment."""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel

SERVICES = {
    "ingestor": ("scicat_ingestor", "INGESTOR_"),
    "indexer": ("scicat_indexer", "INDEXER_"),
    "doi-minter": ("scicat_doi_minter", "DOI_MINTER_"),
    "oai-provider": ("scicat_oai_provider", "OAI_PROVIDER_"),
}
"""Service name → (Python package, environment variable prefix)."""


def settings_class(service: str) -> type[BaseModel]:
    package, _ = SERVICES[service]
    settings: type[BaseModel] = importlib.import_module(f"{package}.settings").Settings
    return settings


def field_exists(model: type[BaseModel], path: list[str]) -> bool:
    """Whether `A__B` (split into `["A", "B"]`) names a (nested) field of `model`."""
    field = model.model_fields.get(path[0].lower())
    if field is None:
        return False
    if len(path) == 1:
        return True
    nested: Any = field.annotation
    return (
        isinstance(nested, type)
        and issubclass(nested, BaseModel)
        and field_exists(nested, path[1:])
    )


def unknown_variables(service: str, names: list[str]) -> list[str]:
    """The variable names that match no settings field of `service`."""
    _, prefix = SERVICES[service]
    settings = settings_class(service)
    return [
        name
        for name in names
        if not name.startswith(prefix)
        or not field_exists(settings, name[len(prefix) :].split("__"))
    ]


def reads_mongodb(service: str) -> bool:
    return "mongo" in settings_class(service).model_fields
