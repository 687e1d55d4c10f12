"""The JSON reports: one document's (``lienthong.validation-report/1``, schema in
``schemas/xsd/validation-report.schema.json``), one package's
(``lienthong.package-validation-report/1``) and a verify run's (``lienthong.verify-run/1``).

New optional fields may appear within a version; a field is never removed or given another
meaning without a new version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from signing.batch import FileResult, counts, exit_code
from signing.trust import TrustSettings
from signing.validation.report import DocumentReport, PackageReport, iso, report_to_dict

__all__ = ["RUN_SCHEMA", "report_to_dict", "report_to_json", "run_json"]

RUN_SCHEMA = "lienthong.verify-run/1"


def report_to_json(report: DocumentReport | PackageReport, *, indent: int | None = 2) -> str:
    """The JSON report (UTF-8 text, Vietnamese kept as is, ``schema`` first)."""
    return json.dumps(report_to_dict(report), ensure_ascii=False, indent=indent)


def run_json(
    results: Sequence[FileResult],
    trust: TrustSettings,
    *,
    jobs: int,
    seconds: float,
    etsi_files: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The ``lienthong.verify-run/1`` document: every file's verdict, warnings and full report,
    and the run's summary."""
    items = []
    for result in results:
        item: dict[str, Any] = {
            "path": result.display,
            "kind": result.kind,
            "indication": result.indication,
            "sub_indication": result.sub_indication,
            "message": result.message,
            "warnings": list(result.warnings),
            "report": report_to_dict(result.report) if result.report is not None else None,
        }
        if etsi_files is not None:
            item["etsi_xml"] = etsi_files.get(result.path, [])
        items.append(item)
    return {
        "schema": RUN_SCHEMA,
        "results": items,
        "summary": {
            **counts(results),
            "exit_code": exit_code(results),
            "validation_time": iso(trust.at),
            "revocation": trust.revocation,
            "anchors": [str(p) for p in trust.anchors],
            "intermediates": [str(p) for p in trust.intermediates],
            "jobs": jobs,
            "seconds": round(seconds, 3),
        },
    }
