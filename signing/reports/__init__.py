"""Validation reports in three forms, all built from the same report objects: JSON (ours,
versioned, :mod:`signing.reports.json`), ETSI TS 119 102-2 XML (:mod:`signing.reports.etsi`),
the interchange format EU DSS and other validators read, and printable HTML
(:mod:`signing.reports.html`) for an auditor."""

from __future__ import annotations

from typing import Literal

from signing.reports.etsi import to_etsi_xml
from signing.reports.html import run_html, to_html
from signing.reports.json import RUN_SCHEMA, report_to_dict, report_to_json, run_json
from signing.validation.report import DocumentReport

__all__ = [
    "RUN_SCHEMA",
    "render",
    "report_to_dict",
    "report_to_json",
    "run_html",
    "run_json",
    "to_etsi_xml",
    "to_html",
]


def render(report: DocumentReport, fmt: Literal["json", "xml", "html"]) -> bytes:
    """The report in ``fmt`` as bytes, ready to write to a file or an HTTP response."""
    if fmt == "json":
        return report_to_json(report).encode("utf-8")
    if fmt == "xml":
        return to_etsi_xml(report)
    if fmt == "html":
        return to_html(report).encode("utf-8")
    raise ValueError(f"unknown report format {fmt!r}")
