"""Sub-commands of `scicat-pipeline`, one module per command group.

Each module here defines `register(app: typer.Typer) -> None`; `scicat_pipeline.cli` registers every
module it finds, so adding a command never edits a shared file.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer


def register_all(app: typer.Typer) -> None:
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(app)
