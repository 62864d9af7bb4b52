"""Offline XML Schema validation against the XSDs in `../shared/schemas`.

One driver schema imports OAI-PMH, oai_dc, oai-identifier, DataCite's OAI wrapper and DataCite
kernel-4, so a whole OAI-PMH response — envelope and the metadata inside — validates in one go.
Remote imports are mapped to the local copies; nothing is fetched from the network.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from lxml import etree

REPO_ROOT = Path(__file__).resolve().parents[3]


def shared_schemas_dir() -> Path:
    """`../shared/schemas` beside the checkout (CI lays it there), or `$SCICAT_SHARED_SCHEMAS`."""
    override = os.environ.get("SCICAT_SHARED_SCHEMAS")
    candidates = [Path(override)] if override else []
    candidates += [REPO_ROOT.parent / "shared" / "schemas", REPO_ROOT / "shared" / "schemas"]
    for candidate in candidates:
        if (candidate / "OAI-PMH.xsd").exists():
            return candidate
    raise FileNotFoundError(f"no shared/schemas found in {[str(c) for c in candidates]}")


class _LocalResolver(etree.Resolver):  # type: ignore[misc]  # lxml ships no type stubs
    def __init__(self, mapping: dict[str, Path]) -> None:
        super().__init__()
        self.mapping = mapping

    def resolve(self, url: str | None, pubid: str | None, context: object) -> object:
        if url and url in self.mapping:
            return self.resolve_filename(str(self.mapping[url]), context)
        return None


@cache
def _schema(kernel: str) -> etree.XMLSchema:
    base = shared_schemas_dir()
    kernel_dir = base / "datacite" / kernel
    imports = {
        "http://www.openarchives.org/OAI/2.0/": base / "OAI-PMH.xsd",
        "http://www.openarchives.org/OAI/2.0/oai_dc/": base / "oai_dc.xsd",
        "http://www.openarchives.org/OAI/2.0/oai-identifier": base / "oai-identifier.xsd",
        "http://schema.datacite.org/oai/oai-1.1/": base / "datacite" / "oai-1.1" / "oai.xsd",
        "http://datacite.org/schema/kernel-4": kernel_dir / "metadata.xsd",
    }
    driver = (
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
        + "".join(
            f'<xs:import namespace="{ns}" schemaLocation="{path.as_uri()}"/>'
            for ns, path in imports.items()
        )
        + "</xs:schema>"
    )
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    parser.resolvers.add(
        _LocalResolver(
            {
                "http://dublincore.org/schemas/xmls/simpledc20021212.xsd": base
                / "simpledc20021212.xsd",
                "http://www.w3.org/2001/03/xml.xsd": kernel_dir / "include" / "xml.xsd",
                "http://www.w3.org/2001/xml.xsd": kernel_dir / "include" / "xml.xsd",
            }
        )
    )
    doc = etree.fromstring(driver.encode(), parser, base_url=(base / "driver.xsd").as_uri())
    return etree.XMLSchema(doc)


def assert_valid(xml: bytes | etree._Element, *, kernel: str = "kernel-4") -> etree._Element:
    """Validate an OAI-PMH response, DataCite resource, oai_dc... or raise with the errors.

    `kernel` picks the DataCite kernel directory: `kernel-4` (4.7) or `kernel-4.6`.
    """
    element = etree.fromstring(xml) if isinstance(xml, bytes) else xml
    schema = _schema(kernel)
    if not schema.validate(element):
        errors = "\n".join(f"line {e.line}: {e.message}" for e in schema.error_log)
        raise AssertionError(f"XML does not validate against the shared XSDs:\n{errors}")
    return element
