"""Readable, printable HTML reports (Vietnamese and English), one file each, no script.

* :func:`to_html`: one document's validation report;
* :func:`run_html`: a whole ``lienthong verify`` run, the summary table and then every file's
  report (a package's: its XML signature and each PDF attachment's report).

The pages come from Jinja2 templates (``signing/reports/templates/``) with autoescape on: a
certificate subject, a PDF ``/Reason`` or a file name is attacker-controlled text, and every
value reaches the page escaped (as :func:`html.escape` does, quotes included) unless a template
marks it as markup of its own.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

if TYPE_CHECKING:
    import jinja2

from signing.batch import FileResult, counts
from signing.reports.json import RUN_SCHEMA
from signing.trust import TrustSettings
from signing.validation.caveats import document_warnings, signature_warnings
from signing.validation.report import (
    INDETERMINATE,
    TOTAL_FAILED,
    TOTAL_PASSED,
    DocumentReport,
    attachment_documents,
    iso,
    worst_indication,
)

__all__ = ["SUB_INDICATION_TEXT", "VERDICT_TEXT", "run_html", "to_html"]

VERDICT_TEXT = {
    TOTAL_PASSED: ("HỢP LỆ", "VALID", "ok"),
    TOTAL_FAILED: ("KHÔNG HỢP LỆ", "INVALID", "bad"),
    INDETERMINATE: ("CHƯA XÁC ĐỊNH", "INDETERMINATE", "warn"),
}

SUB_INDICATION_TEXT: dict[str, tuple[str, str]] = {
    "FORMAT_FAILURE": (
        "Cấu trúc chữ ký hoặc tài liệu không hợp lệ, hoặc tài liệu bị sửa sau khi ký",
        "The signature or document structure is invalid, or the document was changed after signing",
    ),
    "HASH_FAILURE": ("Nội dung đã ký bị thay đổi", "The signed content was altered"),
    "SIG_CRYPTO_FAILURE": ("Giá trị chữ ký không đúng", "The signature value does not verify"),
    "REVOKED": (
        "Chứng thư số đã bị thu hồi trước thời điểm ký",
        "The certificate was revoked before the signature was made",
    ),
    "REVOKED_NO_POE": (
        "Chứng thư số đã bị thu hồi; không có dấu thời gian chứng minh đã ký trước đó",
        "The certificate is revoked and no timestamp proves the signature was made before",
    ),
    "EXPIRED": (
        "Chứng thư số đã hết hạn khi ký",
        "The certificate had expired when the signature was made",
    ),
    "NOT_YET_VALID": (
        "Chữ ký được tạo trước khi chứng thư số có hiệu lực",
        "The signature was made before the certificate became valid",
    ),
    "OUT_OF_BOUNDS_NO_POE": (
        "Chứng thư số ngoài thời hạn hiệu lực; không có dấu thời gian chứng minh thời điểm ký",
        "The certificate is outside its validity period and no timestamp proves the signing time",
    ),
    "NO_CERTIFICATE_CHAIN_FOUND": (
        "Không tìm thấy chuỗi chứng thư đến tổ chức cung cấp dịch vụ tin cậy",
        "No certificate chain to a trusted root",
    ),
    "TRY_LATER": (
        "Chưa xác định được tình trạng thu hồi của chứng thư số",
        "The revocation status could not be established",
    ),
    "CRYPTO_CONSTRAINTS_FAILURE": (
        "Thuật toán mật mã không đáp ứng quy định tại thời điểm ký",
        "The cryptographic algorithms do not meet the rules in force at signing time",
    ),
    "CRYPTO_CONSTRAINTS_FAILURE_NO_POE": (
        "Thuật toán cũ chỉ được chấp nhận nếu chứng minh được thời điểm ký",
        "An old algorithm is acceptable only with a proven signing time",
    ),
    "CHAIN_CONSTRAINTS_FAILURE": (
        "Chuỗi chứng thư không đáp ứng ràng buộc",
        "The certificate chain does not meet the constraints",
    ),
    "CERTIFICATE_CHAIN_GENERAL_FAILURE": (
        "Lỗi khi kiểm tra chuỗi chứng thư",
        "The certificate chain could not be validated",
    ),
    "SIG_CONSTRAINTS_FAILURE": (
        "Tài liệu đã được điền thêm nội dung sau khi ký",
        "Content was filled in after signing",
    ),
    "NO_POE": (
        "Chữ ký được tạo sau thời điểm kiểm tra",
        "The signature did not exist at the validation time",
    ),
}

_SOURCE_TEXT = {
    "signature-timestamp": "dấu thời gian của chữ ký / signature timestamp",
    "document-timestamp": "dấu thời gian lưu trữ / document (archive) timestamp",
    "signing-time-claimed": "thời gian người ký khai, chưa được chứng minh / claimed by the signer",
    "validation-time": "thời điểm kiểm tra / validation time",
    "none": "không có / none",
}

_KIND_TEXT = {
    "signature": "Chữ ký / Signature",
    "certification": "Chữ ký chứng thực (DocMDP) / Certification signature",
    "document-timestamp": "Dấu thời gian tài liệu / Document timestamp",
}


def _escaped(value: object) -> Markup:
    """Every ``{{ value }}``: None as nothing, markup as it is, anything else escaped."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2  # the first page rendered pays for it, not every command

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("signing.reports", "templates"),
        autoescape=True,
        finalize=_escaped,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        PASSED=TOTAL_PASSED,
        verdict_words=lambda indication: VERDICT_TEXT.get(
            indication, (indication, indication, "warn")
        ),
        sub_text=lambda sub: SUB_INDICATION_TEXT.get(sub, (sub, sub)),
        source_text=lambda source: _SOURCE_TEXT.get(source, source),
        kind_text=lambda kind: _KIND_TEXT.get(kind, kind),
        signature_warnings=signature_warnings,
        document_warnings=document_warnings,
        attachments=attachment_documents,
        is_document=lambda report: isinstance(report, DocumentReport),
    )
    return env


def to_html(report: DocumentReport) -> str:
    """The whole report as one self-contained HTML page (no script, print styles inline)."""
    return _environment().get_template("document.html.j2").render(report=report)


def run_html(
    results: Sequence[FileResult], trust: TrustSettings, *, generated_at: dt.datetime
) -> str:
    """One self-contained, printable page for the whole run (no script; everything escaped)."""
    tally = counts(results)
    worst = worst_indication(r.indication for r in results) or INDETERMINATE
    vi, en, css = VERDICT_TEXT.get(worst, (worst, worst, "warn"))
    if worst == TOTAL_PASSED and tally["passed_with_warnings"]:
        vi, en, css = vi + ", CÓ CẢNH BÁO", en + ", WITH WARNINGS", "warn"
    context: dict[str, Any] = {
        "schema": RUN_SCHEMA,
        "overall": {"vi": vi, "en": en, "css": css},
        "validation_time": iso(trust.at),
        "generated_at": iso(generated_at),
        "trust": trust,
        "counts": tally,
        "results": list(results),
    }
    return _environment().get_template("run.html.j2").render(context)
