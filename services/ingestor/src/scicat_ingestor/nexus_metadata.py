"""Scientific metadata from NeXus/HDF5 files, by a declarative YAML mapping per instrument.

A mapping file (`*.yaml` in the configured directory; `mappings/p08.yaml` in this package is the
example) says which files it applies to and where each metadata key comes from:

```yaml
name: p08-nexus
order: 10                        # lower first; the first mapping that selects a file wins
selector:
  instruments: [P08]             # case-insensitive; "*" for any
  file_names: ["*.nxs", "*.h5"]  # shell patterns on the file name
fields:
  energy: {hdf5: /entry/instrument/monochromator/energy}   # unit from the `units` attribute
  sample.name: {hdf5: /entry/sample/name}                   # dots nest: {"sample": {"name": ...}}
  detector.distance: {hdf5: /entry/instrument/detector/distance, unit: mm}  # fixed unit
  facility: {value: PETRA III}                              # a literal
  scan: {template: "{beamtime_id}/{run_id}/{file_name}"}   # a template
```

Template placeholders: `run_id`, `beamtime_id`, `instrument`, `file_name`, `file_path`, `folder`.
Mappings are checked when the service starts (a bad mapping stops it); a field that cannot be
read from one file (missing path, array too large, unreadable value) is a `MetadataIssue` on the
dataset and the other fields are still stored. Reading is blocking h5py I/O: callers run
`extract` in a worker thread.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from scicat_ingestor.quantities import MetadataIssue

NEXUS_SOURCE = "nexus"
MAX_ARRAY_VALUES = 1000
"""Arrays longer than this are not copied into metadata (a catalogue entry is not a data file)."""

TEMPLATE_FIELDS = ("run_id", "beamtime_id", "instrument", "file_name", "file_path", "folder")


class MappingError(ValueError):
    """A mapping file that cannot be used; the message names the file and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldSource(_Strict):
    """Where one metadata key comes from: exactly one of `hdf5`, `value`, `template`."""

    hdf5: str | None = Field(default=None, description="HDF5 path of a dataset in the file.")
    value: Any = Field(default=None, description="A literal value.")
    template: str | None = Field(default=None, description="A `str.format` template.")
    unit: str | None = Field(default=None, description="Unit; overrides the `units` attribute.")

    @model_validator(mode="after")
    def _exactly_one_source(self) -> FieldSource:
        given = [n for n in ("hdf5", "value", "template") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of hdf5, value, template (got {given or 'none'})")
        if self.template is not None:
            try:
                self.template.format(**{name: "x" for name in TEMPLATE_FIELDS})
            except (KeyError, IndexError, ValueError) as error:
                raise ValueError(
                    f"template {self.template!r} is not usable ({error!r}); placeholders: "
                    f"{', '.join(TEMPLATE_FIELDS)}"
                ) from None
        return self


class Selector(_Strict):
    instruments: list[str] = Field(default_factory=lambda: ["*"])
    file_names: list[str] = Field(default_factory=lambda: ["*.nxs", "*.nx5", "*.h5", "*.hdf5"])


class MetadataMapping(_Strict):
    name: str = Field(min_length=1)
    order: int = 100
    selector: Selector = Field(default_factory=Selector)
    fields: dict[str, FieldSource] = Field(min_length=1)

    @model_validator(mode="after")
    def _storable_keys(self) -> MetadataMapping:
        """Keys the catalogue can store, so a mapping typo stops start-up, not every event."""
        for key in self.fields:
            for segment in key.split("."):
                if not segment or segment.startswith("$") or "\x00" in segment:
                    raise ValueError(
                        f"field {key!r}: each dot-separated part must be non-empty, must not "
                        "start with '$' and must not contain NUL"
                    )
        return self

    def selects(self, *, instrument: str, file_name: str) -> bool:
        instruments = {i.lower() for i in self.selector.instruments}
        if "*" not in instruments and instrument.lower() not in instruments:
            return False
        return any(fnmatch.fnmatchcase(file_name, p) for p in self.selector.file_names)


@dataclass(frozen=True)
class FileContext:
    """What templates may use, and which file to read."""

    path: str
    run_id: str
    beamtime_id: str
    instrument: str

    def template_fields(self) -> dict[str, str]:
        return {
            "run_id": self.run_id,
            "beamtime_id": self.beamtime_id,
            "instrument": self.instrument,
            "file_name": posixpath.basename(self.path),
            "file_path": self.path,
            "folder": posixpath.dirname(self.path),
        }


@dataclass(frozen=True)
class Extracted:
    metadata: dict[str, Any]
    issues: list[MetadataIssue]


def load_mappings(directory: Path) -> list[MetadataMapping]:
    """Every `*.yaml`/`*.yml` mapping in `directory`, in selection order; `MappingError` if bad."""
    if not directory.is_dir():
        raise MappingError(f"metadata mapping directory {str(directory)!r} does not exist")
    mappings = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            mappings.append(MetadataMapping.model_validate(yaml.safe_load(path.read_text())))
        except (yaml.YAMLError, ValidationError, OSError) as error:
            raise MappingError(f"metadata mapping {str(path)!r} is not usable: {error}") from error
    return sorted(mappings, key=lambda m: (m.order, m.name))


def select_mapping(
    mappings: list[MetadataMapping], *, instrument: str, path: str
) -> MetadataMapping | None:
    name = posixpath.basename(path)
    return next((m for m in mappings if m.selects(instrument=instrument, file_name=name)), None)


def extract(mapping: MetadataMapping, context: FileContext) -> Extracted:
    """The mapping's metadata for one file; blocking, never raises for a bad file or field."""
    issues: list[MetadataIssue] = []
    metadata: dict[str, Any] = {}
    try:
        with h5py.File(context.path, "r") as nexus:
            for key, source in mapping.fields.items():
                try:
                    _place(metadata, key, _read(source, nexus, context))
                except _FieldProblem as problem:
                    issues.append(MetadataIssue(key, NEXUS_SOURCE, str(problem)))
                except Exception as error:  # h5py raises assorted errors on damaged files
                    issues.append(MetadataIssue(key, NEXUS_SOURCE, f"could not be read: {error!r}"))
    except OSError as error:
        issues.append(
            MetadataIssue(
                "",
                NEXUS_SOURCE,
                f"{context.path!r} could not be read as HDF5 ({error}); "
                f"mapping {mapping.name!r} was not applied",
            )
        )
        return Extracted({}, issues)
    return Extracted(metadata, issues)


class _FieldProblem(Exception):
    pass


def _read(source: FieldSource, nexus: h5py.File, context: FileContext) -> Any:
    if source.template is not None:
        value: Any = source.template.format(**context.template_fields())
        unit = source.unit
    elif source.hdf5 is None:
        value, unit = source.value, source.unit
    else:
        node = nexus.get(source.hdf5)
        if not isinstance(node, h5py.Dataset):
            what = "is not in the file" if node is None else "is a group, not a dataset"
            raise _FieldProblem(f"HDF5 path {source.hdf5!r} {what}")
        value = _plain(node[()], source.hdf5)
        unit = source.unit or _plain_unit(node.attrs.get("units"))
    return {"value": value, "unit": unit} if unit else value


def _plain(raw: Any, where: str) -> Any:
    """An HDF5 value as JSON-like Python: numbers, strings, short lists."""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="replace")
    if isinstance(raw, np.ndarray):
        if raw.size > MAX_ARRAY_VALUES:
            raise _FieldProblem(
                f"HDF5 dataset {where!r} has {raw.size} values, more than {MAX_ARRAY_VALUES}; "
                "map a scalar or a summary instead"
            )
        squeezed = raw.reshape(()) if raw.size == 1 else raw
        if squeezed.ndim == 0:
            return _plain(squeezed.item(), where)
        return [_plain(item, where) for item in squeezed.tolist()]
    if isinstance(raw, np.generic):
        return _plain(raw.item(), where)
    if isinstance(raw, str | int | float | bool) or raw is None:
        return raw
    if isinstance(raw, list):
        return [_plain(item, where) for item in raw]
    raise _FieldProblem(f"HDF5 dataset {where!r} holds {type(raw).__name__}, not a plain value")


def _plain_unit(raw: Any) -> str | None:
    if raw is None:
        return None
    unit = _plain(raw, "units attribute")
    return unit if isinstance(unit, str) and unit.strip() else None


def _place(metadata: dict[str, Any], dotted_key: str, value: Any) -> None:
    *groups, leaf = dotted_key.split(".")
    target: dict[str, Any] = metadata
    for group in groups:
        child = target.setdefault(group, {})
        if not isinstance(child, Mapping):
            raise _FieldProblem(f"key {dotted_key!r} nests under {group!r}, which is a value")
        target = child  # type: ignore[assignment]
    target[leaf] = value
