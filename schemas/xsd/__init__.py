"""The edXML schemas (QCVN 102:2016) and JSON Schemas, from this folder, never the network."""

from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import unquote

from lxml import etree

__all__ = ["SCHEMA_DIR", "load_schema"]

SCHEMA_DIR = Path(__file__).resolve().parent


class _LocalOnly(etree.Resolver):
    """Resolve xs:include only to files in SCHEMA_DIR; anything else is refused."""

    def resolve(self, system_url, public_id, context):  # noqa: D102 (lxml API)
        path = Path(unquote(system_url.removeprefix("file://"))).resolve()
        if path.parent != SCHEMA_DIR or not path.is_file():
            raise OSError(f"schema reference outside {SCHEMA_DIR}: {system_url}")
        return self.resolve_filename(str(path), context)


@functools.cache
def load_schema(name: str) -> etree.XMLSchema:
    """The compiled schema ``name`` (``"edxml"`` or ``"status"``, with or without ``.xsd``)."""
    filename = name if name.endswith(".xsd") else f"{name}.xsd"
    path = (SCHEMA_DIR / filename).resolve()
    if path.parent != SCHEMA_DIR or not path.is_file():
        raise FileNotFoundError(f"no schema {name!r} in {SCHEMA_DIR}")
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    parser.resolvers.add(_LocalOnly())
    return etree.XMLSchema(etree.parse(str(path), parser))
