"""A readable, printable HTML validation report (Vietnamese and English), one file, no script.

Every value from the document or a certificate goes through :func:`html.escape`: a certificate
subject or a PDF ``/Reason`` is attacker-controlled text.
"""

from __future__ import annotations

from html import escape

from signing.caveats import document_warnings, signature_warnings
from signing.validate import (
    INDETERMINATE,
    TOTAL_FAILED,
    TOTAL_PASSED,
    CertInfo,
    DocumentReport,
    SignatureReport,
)

__all__ = ["SUB_INDICATION_TEXT", "VERDICT_TEXT", "to_html"]

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
    "HASH_FAILURE": (
        "Nội dung đã ký bị thay đổi",
        "The signed content was altered",
    ),
    "SIG_CRYPTO_FAILURE": (
        "Giá trị chữ ký không đúng",
        "The signature value does not verify",
    ),
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

_CSS = """
body{font-family:"Times New Roman",Times,serif;font-size:12pt;color:#111;margin:2em;max-width:60em}
h1{font-size:16pt;margin:0 0 .3em}
h2{font-size:13pt;margin:1.2em 0 .3em;border-bottom:1px solid #999}
table{border-collapse:collapse;width:100%;margin:.3em 0}
th,td{border:1px solid #bbb;padding:.25em .5em;text-align:left;vertical-align:top}
th{width:28%;background:#f2f2f2;font-weight:normal}
.verdict{font-size:14pt;font-weight:bold;padding:.4em .6em;border:2px solid;margin:.4em 0}
.ok{color:#0a5d1f;border-color:#0a5d1f;background:#e9f7ec}
.bad{color:#9b1111;border-color:#9b1111;background:#fbeaea}
.warn{color:#7a4b00;border-color:#7a4b00;background:#fff4e0}
.mono{font-family:"DejaVu Sans Mono",monospace;font-size:9pt;word-break:break-all}
.small{font-size:10pt;color:#444}
ul.warnings{color:#7a4b00;background:#fff4e0;border-left:4px solid #7a4b00;padding:.3em 1.8em}
section{page-break-inside:avoid}
@media print{body{margin:0}.verdict{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _row(label: str, value: str) -> str:
    return f"<tr><th>{label}</th><td>{value}</td></tr>"


def _verdict(indication: str, sub: str | None, warnings: int = 0) -> str:
    vi, en, css = VERDICT_TEXT.get(indication, (indication, indication, "warn"))
    line = f"{_e(vi)} / {_e(en)}"
    if warnings:
        line += f" — {warnings} cảnh báo / warning(s)"
        css = "warn" if indication == TOTAL_PASSED else css
    if sub:
        vi_s, en_s = SUB_INDICATION_TEXT.get(sub, (sub, sub))
        line += f" — {_e(vi_s)} / {_e(en_s)} <span class='small'>({_e(sub)})</span>"
    return f"<div class='verdict {css}'>{line}</div>"


def _cert_line(cert: CertInfo | None) -> str:
    if cert is None:
        return "—"
    return (
        f"{_e(cert.subject)}<br><span class='mono'>SHA-256 {_e(cert.sha256)}</span>"
        f"<br><span class='small'>hiệu lực / valid {_e(cert.not_before)} → "
        f"{_e(cert.not_after)}</span>"
    )


def _signature(sig: SignatureReport, revocation_mode: str) -> str:
    kind = {
        "signature": "Chữ ký / Signature",
        "certification": "Chữ ký chứng thực (DocMDP) / Certification signature",
        "document-timestamp": "Dấu thời gian tài liệu / Document timestamp",
    }.get(sig.kind, sig.kind)
    rows: list[str] = []
    if sig.signer is not None:
        rows.append(_row("Người ký / Signer", _e(sig.signer.common_name or sig.signer.subject)))
        rows.append(_row("Cơ quan / Organisation", _e(sig.signer.organization or "—")))
        rows.append(
            _row(
                "Mã định danh / Organ id (2.5.4.97)", _e(sig.signer.organization_identifier or "—")
            )
        )
        rows.append(_row("Chứng thư / Certificate", _cert_line(sig.signer)))
    st = sig.signing_time
    rows.append(
        _row(
            "Thời điểm ký / Signing time",
            f"{_e(st.best or '—')}<br><span class='small'>"
            f"{_e(_SOURCE_TEXT.get(st.source, st.source))}</span>"
            + (
                f"<br><span class='small'>khai / claimed: {_e(st.claimed)}</span>"
                if st.claimed
                else ""
            ),
        )
    )
    for ts in sig.timestamps:
        state = "tin cậy / trusted" if ts.trusted else f"không dùng / not used ({_e(ts.problem)})"
        rows.append(
            _row(
                f"Dấu thời gian / Timestamp ({_e(ts.kind)})",
                f"{_e(ts.time)} — {state}<br>{_cert_line(ts.tsa)}",
            )
        )
    chain = "<br>".join(_cert_line(c) for c in sig.chain.certificates) or "—"
    anchor = _cert_line(sig.chain.anchor) if sig.chain.anchor else "không có / none"
    rows.append(_row("Chuỗi chứng thư / Chain", chain))
    rows.append(
        _row(
            "Gốc tin cậy / Trust anchor",
            f"{anchor}<br><span class='small'>kiểm tra tại / validated at "
            f"{_e(sig.chain.validated_at)}</span>",
        )
    )
    rev = sig.revocation
    rev_text = f"{_e(rev.status)} — {_e(rev.source)}" + (f" ({_e(rev.kind)})" if rev.kind else "")
    if rev.revoked_at:
        rev_text += f"<br>thu hồi lúc / revoked at {_e(rev.revoked_at)} {_e(rev.reason or '')}"
    rows.append(_row("Thu hồi / Revocation", rev_text))
    cov = sig.coverage
    rows.append(
        _row(
            "Phạm vi ký / Coverage",
            f"{_e(cov.level or '—')} — ByteRange {_e(cov.byte_range)}; "
            f"revision {_e(cov.signed_revision)} / {_e(cov.total_revisions)}",
        )
    )
    mods = sig.modifications
    mod_text = _e(mods.level or "—")
    if mods.docmdp is not None:
        mod_text += f" (DocMDP P={_e(mods.docmdp)})"
    if mods.findings:
        mod_text += "<ul>" + "".join(f"<li>{_e(f)}</li>" for f in mods.findings) + "</ul>"
    if mods.changes:
        items = "".join(
            f"<li>rev {_e(c.revision)}: {_e(c.action)} {_e(c.object)} {_e(c.type)}</li>"
            for c in mods.changes[:40]
        )
        mod_text += f"<ul class='small'>{items}</ul>"
    rows.append(_row("Sửa đổi sau khi ký / Changes after signing", mod_text))
    algs = sig.algorithms
    alg_text = (
        f"{_e(algs.signature)} / {_e(algs.digest)}, {_e(algs.key_type)} {_e(algs.key_size)} bit"
        + (f" {_e(algs.curve)}" if algs.curve else "")
    )
    rows.append(_row("Thuật toán / Algorithms", alg_text))
    if sig.policy is not None:
        pol = sig.policy
        pol_text = f"{_e(pol.name)}: {_e(pol.level)}"
        if pol.notes:
            pol_text += "<ul>" + "".join(f"<li>{_e(n)}</li>" for n in pol.notes) + "</ul>"
        rows.append(_row("Quy định / Policy", pol_text))
    msgs = "".join(f"<li>{_e(m)}</li>" for m in sig.messages)
    warnings = len(signature_warnings(sig, revocation_mode))
    return (
        f"<section><h2>{_e(sig.id)} — {kind} — {_e(sig.field or '')}</h2>"
        f"{_verdict(sig.indication, sig.sub_indication, warnings)}"
        f"<ul>{msgs}</ul><table>{''.join(rows)}</table></section>"
    )


def to_html(report: DocumentReport) -> str:
    """The whole report as one self-contained HTML page (no script, print styles inline)."""
    summary = report.summary
    anchors = "<br>".join(_cert_line(a) for a in report.anchors) or "—"
    head_rows = [
        _row("Tệp / File SHA-256", f"<span class='mono'>{_e(report.document_sha256)}</span>"),
        _row("Kích thước / Size", f"{_e(report.document_size)} bytes, {_e(report.revisions)} rev."),
        _row("Thời điểm kiểm tra / Validation time", _e(report.validation_time)),
        _row("Thực hiện lúc / Performed at", _e(report.validated_at)),
        _row("Kiểm tra thu hồi / Revocation mode", _e(report.revocation_mode)),
        _row("Gốc tin cậy đã cấu hình / Configured anchors", anchors),
        _row(
            "Số chữ ký / Signatures",
            f"{_e(summary.signatures)} + {_e(summary.document_timestamps)} timestamp(s)",
        ),
    ]
    warnings = document_warnings(report)
    caveats = "".join(f"<li>{_e(w)}</li>" for w in warnings)
    errors = "".join(f"<li>{_e(x)}</li>" for x in report.errors if x not in warnings)
    body = "".join(_signature(s, report.revocation_mode) for s in report.signatures)
    return (
        "<!DOCTYPE html><html lang='vi'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width'>"
        "<title>Báo cáo kiểm tra chữ ký / Signature validation report</title>"
        f"<style>{_CSS}</style></head><body>"
        "<h1>Báo cáo kiểm tra chữ ký số / Signature validation report</h1>"
        f"<p class='small'>{_e(report.schema)}</p>"
        f"{_verdict(summary.indication, summary.sub_indication, len(warnings))}"
        f"<p>{_e(summary.message)}</p>"
        + (f"<h2>Cảnh báo / Warnings</h2><ul class='warnings'>{caveats}</ul>" if caveats else "")
        + f"<table>{''.join(head_rows)}</table>"
        + (f"<ul>{errors}</ul>" if errors else "")
        + body
        + "</body></html>"
    )
