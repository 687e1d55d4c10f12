"""Validation reports in three forms: JSON (ours, versioned), ETSI TS 119 102-2 XML, HTML.

* JSON: :func:`report_to_dict` / :func:`report_to_json`, schema
  ``lienthong.validation-report/1`` described by ``schemas/xsd/validation-report.schema.json``
  (JSON Schema draft 2020-12). New optional fields may appear within version 1; a field is
  never removed or given another meaning without a new version.
* XML: :func:`signing.etsi.to_etsi_xml` (re-exported here), the interchange format EU DSS and
  other validators read.
* HTML: :func:`signing.report_html.to_html` (re-exported), for an auditor to read and print.

All three are built from the same :class:`~signing.validate.DocumentReport`.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

from signing.etsi import to_etsi_xml
from signing.report_html import to_html
from signing.validate import SCHEMA, DocumentReport

__all__ = [
    "SCHEMA",
    "render",
    "report_to_dict",
    "report_to_json",
    "to_etsi_xml",
    "to_html",
]


def report_to_dict(report: DocumentReport) -> dict[str, Any]:
    """The report as plain JSON-ready data (``schema`` first)."""
    data = dataclasses.asdict(report)
    return {"schema": data.pop("schema"), **data}


def report_to_json(report: DocumentReport, *, indent: int | None = 2) -> str:
    """The JSON report (UTF-8 text, Vietnamese kept as is)."""
    return json.dumps(report_to_dict(report), ensure_ascii=False, indent=indent)


def render(report: DocumentReport, fmt: Literal["json", "xml", "html"]) -> bytes:
    """The report in ``fmt`` as bytes, ready to write to a file or an HTTP response."""
    if fmt == "json":
        return report_to_json(report).encode("utf-8")
    if fmt == "xml":
        return to_etsi_xml(report)
    if fmt == "html":
        return to_html(report).encode("utf-8")
    raise ValueError(f"unknown report format {fmt!r}")
