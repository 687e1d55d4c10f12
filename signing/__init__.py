"""Signatures of official documents: PAdES for PDFs, XML-DSig for edXML packages, detached CMS
for small documents, and their validation (ETSI EN 319 102-1 verdicts, JSON/ETSI XML/HTML
reports). Depends on :mod:`schemas` (the edXML wire format), never on the hub.

    with open_key(KeySource(p12=Path("clerk.p12")), secret) as key:
        signed = sign_pdf(pdf, key, SignOptions(role="leader", level="B-T", ...))
        package = sign_package(data, key)
    report = validate_pdf(signed, TrustSettings(anchors=[Path("root.pem")]))
    report.summary.indication                  # TOTAL_PASSED, TOTAL_FAILED or INDETERMINATE

Every operation has an async core (``async_validate_pdf``) and a thin sync wrapper
(``validate_pdf``) for callers without an event loop. A process that validates many documents
calls :func:`install_fast_paths` once (the hub's workers and ``lienthong verify`` do).
Submodules hold the rest: :mod:`signing.pdf` (options, placement, appearance, signing),
:mod:`signing.validation` (the report model and each step), :mod:`signing.reports` (JSON, ETSI
XML, HTML), :mod:`signing.batch` (many files), :mod:`signing.trust`, :mod:`signing.keys`.
"""

from __future__ import annotations

from signing.cli.sign import add_sign_commands
from signing.cli.verify import add_verify_command
from signing.cms import CmsCheck, sign_detached, verify_detached
from signing.devkey import ensure_dev_key
from signing.errors import SigningError, TrustError
from signing.keys import KeyHandle, KeySource, open_key
from signing.pdf.archive import add_archive_timestamp, async_add_archive_timestamp
from signing.pdf.fasthex import install_fast_paths
from signing.pdf.options import SignOptions
from signing.pdf.placement import AnchorPlacement, BoxPlacement, FieldPlacement
from signing.pdf.sign import async_sign_pdf, sign_pdf
from signing.trust import TrustSettings
from signing.validation.package import async_validate_package, validate_package
from signing.validation.pdf import async_validate_pdf, validate_pdf
from signing.validation.report import (
    INDETERMINATE,
    TOTAL_FAILED,
    TOTAL_PASSED,
    AttachmentReport,
    DocumentReport,
    PackageReport,
)
from signing.xml import async_sign_package, async_verify_package, sign_package, verify_package

__all__ = [
    "INDETERMINATE",
    "TOTAL_FAILED",
    "TOTAL_PASSED",
    "AnchorPlacement",
    "AttachmentReport",
    "BoxPlacement",
    "CmsCheck",
    "DocumentReport",
    "FieldPlacement",
    "KeyHandle",
    "KeySource",
    "PackageReport",
    "SignOptions",
    "SigningError",
    "TrustError",
    "TrustSettings",
    "add_archive_timestamp",
    "add_sign_commands",
    "add_verify_command",
    "async_add_archive_timestamp",
    "async_sign_package",
    "async_sign_pdf",
    "async_validate_package",
    "async_validate_pdf",
    "async_verify_package",
    "ensure_dev_key",
    "install_fast_paths",
    "open_key",
    "sign_detached",
    "sign_package",
    "sign_pdf",
    "validate_package",
    "validate_pdf",
    "verify_detached",
    "verify_package",
]
