"""``lienthong verify PATH...``: verify signed PDFs and edXML packages, for auditors.

Each PATH is a file or a folder (walked recursively for ``*.pdf``, ``*.edxml`` and ``*.xml``).
What a file is comes from its first bytes (``%PDF-`` or XML), not from its name. Several files
are verified in parallel, one process per core (:func:`signing.validate.validate_pdf_sync` and
:func:`signing.validate_package.validate_package_sync` are pure, picklable functions), with a
progress bar on stderr when it is a terminal and a summary table on stdout.

Exit code: 0 when every file passed, 1 when any failed (TOTAL-FAILED), 2 when none failed but
any is INDETERMINATE (an unsigned file, no revocation data, an unknown signer...), 3 when the run
itself could not be done (unusable trust settings, an output that cannot be written).

Outputs besides the table, all built from the same reports:

* ``--json``: one JSON document (schema ``lienthong.verify-run/1``) on stdout, with every file's
  full report (``lienthong.validation-report/1`` or ``lienthong.package-validation-report/1``);
* ``--etsi-xml DIR``: one ETSI TS 119 102-2 report per PDF, and per PDF attachment of a package;
* ``--html FILE``: one printable page, the summary table and then each document's report.

A file that cannot be read, or is neither a PDF nor XML, is a ``TOTAL-FAILED/FORMAT_FAILURE``
result with a plain message, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
import types
import typing
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from signing.errors import TrustError
from signing.fastpaths import install_fast_paths
from signing.trust import TrustSettings
from signing.validate import (
    INDETERMINATE,
    TOTAL_FAILED,
    TOTAL_PASSED,
    DocumentReport,
    worst_indication,
)

if typing.TYPE_CHECKING:
    from signing.validate_package import PackageReport

__all__ = [
    "RUN_SCHEMA",
    "SUFFIXES",
    "FileResult",
    "add_verify_command",
    "cmd_verify",
    "collect_files",
    "detect_kind",
    "document_report_from_dict",
    "exit_code",
    "report_warnings",
    "run_html",
    "run_json",
    "verify_file",
    "verify_files",
    "write_etsi_reports",
]

RUN_SCHEMA = "lienthong.verify-run/1"
SUFFIXES = (".pdf", ".edxml", ".xml")
EXIT_PASSED, EXIT_FAILED, EXIT_INDETERMINATE, EXIT_ERROR = 0, 1, 2, 3
_EXIT = {TOTAL_PASSED: EXIT_PASSED, TOTAL_FAILED: EXIT_FAILED, INDETERMINATE: EXIT_INDETERMINATE}
_XML_START = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")  # byte order marks


# ----- one file --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileResult:
    """The verdict on one input file; ``report`` is None when nothing could be validated."""

    path: str
    kind: str  # "pdf" | "package" | "unknown"
    indication: str
    sub_indication: str | None
    message: str
    report: DocumentReport | PackageReport | None = None
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()  # every caveat in the report (signing.caveats)

    @property
    def display(self) -> str:
        """The path as text for reports: bytes that are not UTF-8 (possible in Linux file
        names) shown as ``\\xNN`` instead of breaking the JSON, HTML or terminal output."""
        return self.path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def detect_kind(data: bytes) -> str | None:
    """``"pdf"`` or ``"package"`` from the first bytes, or None when the file is neither.

    A PDF header may follow up to 1024 bytes of junk (ISO 32000-1, 7.5.2, as readers accept);
    XML may start with a byte order mark and blanks.
    """
    head = data[:1024]
    stripped = head.lstrip(b" \t\r\n\f\x00")
    if stripped.startswith(b"%PDF-"):
        return "pdf"
    if stripped.startswith(_XML_START) or stripped.startswith(b"<"):
        return "package"
    if b"%PDF-" in head:
        return "pdf"
    return None


def _kind_from_name(path: str) -> str:
    suffix = Path(path).suffix.lower()
    return "pdf" if suffix == ".pdf" else "package" if suffix in (".edxml", ".xml") else "unknown"


def _format_failure(path: str, kind: str, message: str, started: float) -> FileResult:
    return FileResult(
        path, kind, TOTAL_FAILED, "FORMAT_FAILURE", message, None, time.perf_counter() - started
    )


def verify_file(path: str, trust: TrustSettings) -> FileResult:
    """Read and validate one file; never raises (a process-pool task, so it pickles).

    Unreadable files and files that are neither PDF nor XML are ``TOTAL-FAILED/FORMAT_FAILURE``;
    an unexpected error inside a validator is ``INDETERMINATE/GENERIC`` (it must not pass, and it
    says nothing about the document).
    """
    started = time.perf_counter()
    guess = _kind_from_name(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except IsADirectoryError:
        return _format_failure(path, guess, "cannot read the file: it is a folder", started)
    except FileNotFoundError:
        return _format_failure(path, guess, "cannot read the file: it does not exist", started)
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        return _format_failure(path, guess, f"cannot read the file: {reason}", started)
    if not data:
        return _format_failure(path, guess, "the file is empty", started)
    kind = detect_kind(data)
    if kind is None:
        message = "neither a PDF (no %PDF- header) nor an XML package: nothing to verify"
        return _format_failure(path, guess, message, started)
    try:
        if kind == "pdf":
            from signing.validate import validate_pdf_sync

            report: Any = validate_pdf_sync(data, trust)
            indication = report.summary.indication
            sub = report.summary.sub_indication
            message = report.summary.message
            if indication == INDETERMINATE and sub is None and not report.signatures:
                sub = "SIGNED_DATA_NOT_FOUND"  # as packages say it (EN 319 102-1)
        else:
            from signing.validate_package import validate_package_sync

            report = validate_package_sync(data, trust)
            indication, sub, message = report.indication, report.sub_indication, report.message
    except Exception as exc:  # noqa: BLE001 - one file must not stop the run
        text = " ".join(str(exc).split())[:300] or exc.__class__.__name__
        return FileResult(
            path,
            kind,
            INDETERMINATE,
            "GENERIC",
            f"internal error while verifying: {text}",
            None,
            time.perf_counter() - started,
        )
    return FileResult(
        path,
        kind,
        indication,
        sub,
        message,
        report,
        time.perf_counter() - started,
        tuple(report_warnings(report)),
    )


def report_warnings(report: DocumentReport | PackageReport) -> list[str]:
    """Every caveat of a file's report (a package's: its attachments', prefixed with their
    names), as :mod:`signing.caveats` finds them in the report's fields."""
    from signing.caveats import document_warnings

    if isinstance(report, DocumentReport):
        return document_warnings(report)
    out: list[str] = []
    for name, document in _documents(FileResult("", "package", "", None, "", report)):
        if document is not None:
            out += [f"attachment {name}: {w}" for w in document_warnings(document)]
    return out


# ----- many files ------------------------------------------------------------------------------


def collect_files(paths: Sequence[Path], exclude: Iterable[Path] = ()) -> list[str]:
    """The files to verify, in the order given; folders walked recursively and sorted.

    A file named directly is taken whatever its name (its content decides); inside folders only
    :data:`SUFFIXES` count. Symbolic links to folders are not followed. Paths in ``exclude``
    (the run's own outputs) and duplicates are skipped. A path that does not exist stays in the
    list, so that it becomes a failed result rather than vanishing.
    """
    skip = {_resolved(p) for p in exclude}
    out: list[str] = []
    seen: set[str] = set()

    def add(name: str) -> None:
        key = _resolved(Path(name))
        if key in seen or key in skip or any(key.startswith(s + os.sep) for s in skip):
            return
        seen.add(key)
        out.append(name)

    for path in paths:
        if not path.is_dir():
            add(str(path))
            continue
        for root, dirs, files in os.walk(path, followlinks=False):
            dirs.sort()
            for name in sorted(files):
                if name.lower().endswith(SUFFIXES):
                    add(os.path.join(root, name))
    return out


def _resolved(path: Path) -> str:
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):
        return str(path.absolute())


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    """Mute library logging while verifying: pyHanko logs every failed check with a traceback,
    and a hostile file's failure belongs in its report, not on the auditor's terminal."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)


def _worker_init() -> None:
    """Pool workers: the fast paths, quiet logging, and Ctrl-C left to the parent, which stops
    the pool."""
    install_fast_paths()
    logging.disable(logging.CRITICAL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool_context() -> multiprocessing.context.BaseContext:
    """``fork`` from a single-threaded process (the CLI: workers start at once, modules loaded);
    ``forkserver`` otherwise, since forking a process with other threads can copy held locks."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["signing.validate", "signing.validate_package"])
        return ctx
    return multiprocessing.get_context("spawn")


def verify_files(
    files: Sequence[str],
    trust: TrustSettings,
    *,
    jobs: int = 1,
    on_done: Callable[[FileResult], None] | None = None,
) -> list[FileResult]:
    """Verify ``files`` (in a process pool of ``jobs`` when there are several) in input order.

    ``on_done`` is called in this process as each file finishes (progress display). A worker
    process that dies makes its files ``INDETERMINATE/GENERIC``.
    """
    done = on_done or (lambda _result: None)
    install_fast_paths()  # a batch entry point: this process validates too
    if jobs <= 1 or len(files) <= 1:
        results = []
        with _quiet_logging():
            for name in files:
                results.append(verify_file(name, trust))
                done(results[-1])
        return results
    results_by_index: dict[int, FileResult] = {}
    workers = min(jobs, len(files))
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=_pool_context(), initializer=_worker_init
    ) as pool:
        futures: dict[Future[FileResult], int] = {
            pool.submit(verify_file, name, trust): index for index, name in enumerate(files)
        }
        try:
            for future in as_completed(futures):
                index = futures[future]
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 - BrokenProcessPool and the like
                    result = FileResult(
                        files[index],
                        _kind_from_name(files[index]),
                        INDETERMINATE,
                        "GENERIC",
                        f"the verifying process failed: {exc.__class__.__name__} {exc}".strip(),
                    )
                results_by_index[index] = result
                done(result)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return [results_by_index[i] for i in range(len(files))]


def exit_code(results: Sequence[FileResult]) -> int:
    """1 if any file failed, else 2 if any is indeterminate (or there is none), else 0."""
    worst = worst_indication(r.indication for r in results)
    return EXIT_INDETERMINATE if worst is None else _EXIT[worst]


# ----- reports: JSON ---------------------------------------------------------------------------


def _report_dict(result: FileResult) -> dict[str, Any] | None:
    if result.report is None:
        return None
    data = dataclasses.asdict(result.report)
    return {"schema": data.pop("schema"), **data}


def _counts(results: Sequence[FileResult]) -> dict[str, int]:
    def count(indication: str) -> int:
        return sum(1 for r in results if r.indication == indication)

    return {
        "files": len(results),
        "passed": count(TOTAL_PASSED),
        "passed_with_warnings": sum(
            1 for r in results if r.indication == TOTAL_PASSED and r.warnings
        ),
        "failed": count(TOTAL_FAILED),
        "indeterminate": count(INDETERMINATE),
    }


def run_json(
    results: Sequence[FileResult],
    trust: TrustSettings,
    *,
    jobs: int,
    seconds: float,
    etsi_files: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The ``lienthong.verify-run/1`` document."""
    items = []
    for result in results:
        item: dict[str, Any] = {
            "path": result.display,
            "kind": result.kind,
            "indication": result.indication,
            "sub_indication": result.sub_indication,
            "message": result.message,
            "warnings": list(result.warnings),
            "report": _report_dict(result),
        }
        if etsi_files is not None:
            item["etsi_xml"] = etsi_files.get(result.path, [])
        items.append(item)
    return {
        "schema": RUN_SCHEMA,
        "results": items,
        "summary": {
            **_counts(results),
            "exit_code": exit_code(results),
            "validation_time": _iso(trust.at),
            "revocation": trust.revocation,
            "anchors": [str(p) for p in trust.anchors],
            "intermediates": [str(p) for p in trust.intermediates],
            "jobs": jobs,
            "seconds": round(seconds, 3),
        },
    }


def _iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


# ----- reports: ETSI XML -----------------------------------------------------------------------

_UNSAFE = re.compile(r"[^\w.-]+")


def _safe_stem(name: str, fallback: str = "document") -> str:
    """A file name part that cannot leave the folder or hide: letters, digits, ``._-`` only."""
    stem = unicodedata.normalize("NFC", Path(name).name)
    for suffix in SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    stem = _UNSAFE.sub("_", stem).strip("._-")[:100]
    return stem or fallback


def document_report_from_dict(data: dict[str, Any]) -> DocumentReport:
    """Rebuild a :class:`~signing.validate.DocumentReport` from its JSON form (the form package
    reports hold their attachments' reports in), for the XML and HTML renderers."""
    return _from_dict(DocumentReport, data)


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {
        f.name: _convert(hints[f.name], data[f.name])
        for f in dataclasses.fields(cls)
        if f.name in data
    }
    return cls(**kwargs)


def _convert(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return _convert(options[0], value) if len(options) == 1 else value
    if origin is list:
        (item,) = typing.get_args(kind)
        return [_convert(item, v) for v in value]
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return _from_dict(kind, value)
    return value


def _documents(result: FileResult) -> list[tuple[str | None, DocumentReport | None]]:
    """(attachment name or None, PDF report) pairs: the file itself, or a package's PDFs."""
    report = result.report
    if report is None:
        return []
    if isinstance(report, DocumentReport):
        return [(None, report)]
    out: list[tuple[str | None, DocumentReport | None]] = []
    for attachment in report.attachments:
        try:
            rebuilt: DocumentReport | None = document_report_from_dict(attachment.report)
        except (TypeError, KeyError, ValueError):
            rebuilt = None
        out.append((attachment.name or attachment.content_id, rebuilt))
    return out


def write_etsi_reports(results: Sequence[FileResult], folder: Path) -> dict[str, list[str]]:
    """One ETSI TS 119 102-2 XML per PDF and per PDF attachment; returns the names per input.

    Names come from the input names, reduced to letters, digits and ``._-`` (so they stay in
    ``folder``), ``<file>.etsi.xml`` or ``<package>--<attachment>.etsi.xml``; a clash gets
    ``-2``, ``-3``... Existing files of the same name are replaced.
    """
    from signing.etsi import to_etsi_xml

    folder.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    written: dict[str, list[str]] = {}
    for result in results:
        names: list[str] = []
        for attachment, report in _documents(result):
            if report is None:
                continue
            stem = _safe_stem(result.display)
            if attachment is not None:
                stem += "--" + _safe_stem(attachment, "attachment")
            name, n = f"{stem}.etsi.xml", 1
            while name.lower() in taken:
                n += 1
                name = f"{stem}-{n}.etsi.xml"
            taken.add(name.lower())
            _write_atomic(folder / name, to_etsi_xml(report))
            names.append(name)
        written[result.path] = names
    return written


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ----- reports: HTML ---------------------------------------------------------------------------

_RUN_CSS = """
.run th{width:auto}
.run td.v{font-weight:bold;white-space:nowrap}
td.v.ok{color:#0a5d1f}td.v.bad{color:#9b1111}td.v.warn{color:#7a4b00}
article{page-break-before:always;border-top:3px double #666;margin-top:2em;padding-top:.5em}
article>h2.file{font-size:14pt;border:none;word-break:break-all}
"""


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _parts(page: str) -> tuple[str, str]:
    """The CSS and the body of a page made by :func:`signing.report_html.to_html`."""
    css = page.partition("<style>")[2].partition("</style>")[0]
    body = page.partition("<body>")[2].rpartition("</body>")[0]
    return css, body


def _verdict_words(indication: str) -> tuple[str, str, str]:
    from signing.report_html import VERDICT_TEXT

    return VERDICT_TEXT.get(indication, (indication, indication, "warn"))


def _verdict_box(indication: str, sub: str | None, message: str) -> str:
    from signing.report_html import SUB_INDICATION_TEXT

    vi, en, css = _verdict_words(indication)
    line = f"{_e(vi)} / {_e(en)}"
    if sub:
        vi_s, en_s = SUB_INDICATION_TEXT.get(sub, (sub, sub))
        line += f" — {_e(vi_s)} / {_e(en_s)} <span class='small'>({_e(sub)})</span>"
    return f"<div class='verdict {_e(css)}'>{line}</div><p>{_e(message)}</p>"


def _package_html(result: FileResult, report: PackageReport) -> str:
    from signing.report_html import to_html

    xml = report.xml_signature
    rows = [
        (
            "Gói tin SHA-256 / Package SHA-256",
            f"<span class='mono'>{_e(report.package_sha256)}</span>",
        ),
        ("Thực hiện lúc / Performed at", _e(report.validated_at)),
        (
            "Chữ ký XML / XML signature",
            f"{_e(' / '.join(_verdict_words(xml.indication)[:2]))}"
            + (f" ({_e(xml.sub_indication)})" if xml.sub_indication else "")
            + f"<br>{_e(xml.message)}",
        ),
        ("Thuật toán / Algorithm", _e(xml.algorithm or "—")),
        ("Người ký / Signer", _e(xml.signer_subject or "—")),
        ("Mã định danh / Organ id (2.5.4.97)", _e(xml.signer_organization_identifier or "—")),
        (
            "Phủ toàn bộ gói tin / Covers the whole package",
            "có / yes" if xml.covers_whole_document else "không / no",
        ),
        (
            "Tệp đính kèm PDF / PDF attachments",
            "<br>".join(
                f"{_e(a.name or a.content_id)} — {_e(' / '.join(_verdict_words(a.indication)[:2]))}"
                for a in report.attachments
            )
            or "—",
        ),
        (
            "Không kiểm tra (không phải PDF) / Not verified (not PDF)",
            _e(", ".join(report.skipped_attachments) or "—"),
        ),
    ]
    table = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in rows)
    parts = [f"<table>{table}</table>"]
    for attachment, document in _documents(result):
        parts.append(f"<h2 class='file'>Tệp đính kèm / Attachment: {_e(attachment)}</h2>")
        if document is None:
            parts.append("<p>Báo cáo không đọc được / The report cannot be read</p>")
        else:
            parts.append(_parts(to_html(document))[1])
    return "".join(parts)


def run_html(
    results: Sequence[FileResult], trust: TrustSettings, *, generated_at: dt.datetime
) -> str:
    """One self-contained, printable page for the whole run (no script; everything escaped)."""
    from signing.report_html import to_html

    base_css = ""
    sections: list[str] = []
    rows: list[str] = []
    for index, result in enumerate(results, start=1):
        vi, en, css = _verdict_words(result.indication)
        verdict = f"{_e(vi)} / {_e(en)}"
        if result.warnings:
            verdict += f"<br><span class='warn'>{_e(_warning_count(result.warnings))}</span>"
        rows.append(
            f"<tr><td><a href='#doc-{index}'>{_e(result.display)}</a></td>"
            f"<td>{_e(result.kind)}</td>"
            f"<td class='v {_e(css)}'>{verdict}</td>"
            f"<td>{_e(result.sub_indication or '—')}</td>"
            f"<td>{_e(result.message)}{_warning_list(result.warnings)}</td></tr>"
        )
        head = f"<h2 class='file'>{index}. {_e(result.display)}</h2>"
        if isinstance(result.report, DocumentReport):
            page_css, body = _parts(to_html(result.report))
            base_css = base_css or page_css
            content = f"<p class='small'>{_e(result.kind)}</p>{body}"
        elif result.report is not None:
            content = _verdict_box(result.indication, result.sub_indication, result.message)
            content += _warning_list(result.warnings)
            content += _package_html(result, result.report)
        else:
            content = _verdict_box(result.indication, result.sub_indication, result.message)
        sections.append(f"<article id='doc-{index}'>{head}{content}</article>")
    if not base_css:
        base_css = _parts(to_html(_empty_report()))[0]
    counts = _counts(results)
    worst = worst_indication(r.indication for r in results) or INDETERMINATE
    info = [
        ("Thời điểm kiểm tra / Validation time", _e(_iso(trust.at) or "hiện tại / now")),
        ("Thực hiện lúc / Performed at", _e(_iso(generated_at))),
        ("Kiểm tra thu hồi / Revocation mode", _e(trust.revocation)),
        ("Gốc tin cậy / Trust anchors", "<br>".join(_e(p) for p in trust.anchors)),
        (
            "Kết quả / Results",
            f"{counts['files']} tệp / files: {counts['passed']} hợp lệ / valid, "
            f"{counts['failed']} không hợp lệ / invalid, {counts['indeterminate']} chưa xác "
            f"định / indeterminate; {counts['passed_with_warnings']} hợp lệ có cảnh báo / valid "
            "with warnings",
        ),
    ]
    info_rows = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in info)
    vi, en, css = _verdict_words(worst)
    if worst == TOTAL_PASSED and counts["passed_with_warnings"]:
        vi, en, css = vi + ", CÓ CẢNH BÁO", en + ", WITH WARNINGS", "warn"
    return (
        "<!DOCTYPE html><html lang='vi'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width'>"
        "<title>Kết quả kiểm tra chữ ký / Signature verification run</title>"
        f"<style>{base_css}{_RUN_CSS}</style></head><body>"
        "<h1>Kết quả kiểm tra chữ ký số / Signature verification run</h1>"
        f"<p class='small'>{_e(RUN_SCHEMA)}</p>"
        f"<div class='verdict {_e(css)}'>{_e(vi)} / {_e(en)}</div>"
        f"<table>{info_rows}</table>"
        "<table class='run'><tr><th>Tệp / File</th><th>Loại / Kind</th>"
        "<th>Kết luận / Verdict</th><th>Chỉ dẫn phụ / Sub-indication</th>"
        "<th>Ghi chú / Message</th></tr>"
        + "".join(rows)
        + "</table>"
        + "".join(sections)
        + "</body></html>"
    )


def _warning_count(warnings: Sequence[str]) -> str:
    return f"{len(warnings)} cảnh báo / warning(s)"


def _warning_list(warnings: Sequence[str]) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li>{_e(w)}</li>" for w in warnings)
    return f"<ul class='warnings'>{items}</ul>"


def _empty_report() -> DocumentReport:
    from signing.validate import Summary

    return DocumentReport("", "", "", False, "", "", 0, 0, [], Summary("", None, 0, 0, ""), [])


# ----- the terminal ----------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    """No terminal control characters (file names and messages come from outside)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _short(text: str, limit: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_STYLE = {TOTAL_PASSED: "bold green", TOTAL_FAILED: "bold red", INDETERMINATE: "bold yellow"}


def _print_table(results: Sequence[FileResult], seconds: float, jobs: int) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title="Verification")
    table.add_column("file", overflow="fold", ratio=3)
    table.add_column("kind", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("sub-indication", overflow="fold")
    table.add_column("message", overflow="fold", ratio=4)
    for result in results:
        verdict = Text(result.indication, style=_STYLE.get(result.indication, ""))
        message = Text(_printable(_short(result.message)))
        if result.warnings:
            verdict.append(f"\n{len(result.warnings)} warning(s)", style="yellow")
            for warning in result.warnings:  # every one, whole: they are the point
                message.append("\n• " + _printable(" ".join(warning.split())), style="yellow")
        table.add_row(
            Text(_printable(result.display)),
            Text(result.kind),
            verdict,
            Text(result.sub_indication or "—"),
            message,
        )
    console.print(table)
    counts = _counts(results)
    passed = f"{counts['passed']} passed"
    if counts["passed_with_warnings"]:
        passed += f" ({counts['passed_with_warnings']} with warnings)"
    console.print(
        Text(
            f"{counts['files']} file(s): {passed}, {counts['failed']} failed, "
            f"{counts['indeterminate']} indeterminate ({seconds:.1f} s, {jobs} process(es))"
        )
    )


def _default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _parse_at(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--at {text!r} is not an ISO 8601 date and time") from None
    if moment.utcoffset() is None:
        raise ValueError(
            f"--at {text!r} has no time zone: write it like 2024-05-01T09:00:00+07:00 or ...Z"
        )
    if moment > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5):
        raise ValueError(f"--at {text!r} is in the future")
    return moment


def _error(message: str) -> int:
    print(f"lienthong verify: error: {_printable(message)}", file=sys.stderr)
    return EXIT_ERROR


def cmd_verify(args: argparse.Namespace) -> int:
    """Run ``lienthong verify`` with parsed arguments; returns the exit code."""
    anchors = [*(args.trust or ()), *(args.trust_dir or ())]
    if not anchors:
        return _error("give at least one trust anchor: --trust FILE or --trust-dir DIR")
    if args.jobs is not None and args.jobs < 1:
        return _error("--jobs must be at least 1")
    try:
        at = _parse_at(args.at) if args.at else None
        trust = TrustSettings(
            anchors=anchors,
            intermediates=list(args.intermediate or ()),
            revocation=args.revocation,
            at=at,
        )
        trust.load()  # an unusable anchor stops the run here, not in every worker
    except (TrustError, ValueError) as exc:
        return _error(str(exc))
    if args.etsi_xml is not None and args.etsi_xml.exists() and not args.etsi_xml.is_dir():
        return _error(f"--etsi-xml {args.etsi_xml}: not a folder")
    outputs = [p for p in (args.etsi_xml, args.html) if p is not None]
    files = collect_files(args.paths, exclude=outputs)
    if not files:
        print("lienthong verify: no .pdf, .edxml or .xml file found", file=sys.stderr)
        return EXIT_INDETERMINATE  # nothing was shown to be valid
    jobs = min(args.jobs or _default_jobs(), len(files))
    generated_at = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    results = _run_with_progress(files, trust, jobs)
    seconds = time.perf_counter() - started
    etsi_files = None
    try:
        if args.etsi_xml is not None:
            etsi_files = write_etsi_reports(results, args.etsi_xml)
        if args.html is not None:
            page = run_html(results, trust, generated_at=generated_at)
            args.html.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(args.html, page.encode("utf-8"))
    except OSError as exc:
        return _error(f"cannot write the reports: {exc}")
    if args.json:
        document = run_json(results, trust, jobs=jobs, seconds=seconds, etsi_files=etsi_files)
        sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
        sys.stdout.flush()
    else:
        _print_table(results, seconds, jobs)
    return exit_code(results)


def _run_with_progress(files: list[str], trust: TrustSettings, jobs: int) -> list[FileResult]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    show = len(files) > 1 and sys.stderr.isatty()
    if not show:
        return verify_files(files, trust, jobs=jobs)
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task("verifying", total=len(files))
    # The pool starts (forks) its workers before the bar's refresh thread exists.
    started = False

    def advance(_result: FileResult) -> None:
        nonlocal started
        if not started:
            progress.start()
            started = True
        progress.advance(task)

    try:
        return verify_files(files, trust, jobs=jobs, on_done=advance)
    finally:
        progress.stop()


# ----- argparse --------------------------------------------------------------------------------

_DESCRIPTION = """\
Verify every signature and timestamp of PDF files and edXML packages (PAdES and XML-DSig;
ETSI EN 319 102-1 verdicts: TOTAL-PASSED, TOTAL-FAILED, INDETERMINATE). Folders are walked
recursively for *.pdf, *.edxml and *.xml and verified in parallel, one process per core; what a
file is comes from its content, not its name. A summary table goes to stdout (or JSON with
--json); a progress bar to stderr when it is a terminal.
"""

_EPILOG = """\
exit status:
  0  every file passed (TOTAL-PASSED)
  1  at least one file failed (TOTAL-FAILED): altered, badly signed, unreadable, not PDF/XML
  2  none failed, at least one is INDETERMINATE (unsigned, unknown signer, no revocation data...),
     or no file was found to verify
  3  the run could not be done (unusable trust anchors, bad --at, outputs not writable)

examples:
  lienthong verify --trust vgca-root.pem qd-123.pdf
  lienthong verify --trust-dir anchors/ --revocation embedded-only --at 2024-05-01T00:00:00+07:00 \\
      --etsi-xml reports/ --html run.html archive/
  lienthong verify --trust root.pem --json inbox/ > run.json
"""


def add_verify_command(sub: argparse._SubParsersAction) -> None:
    """Register ``verify`` under the main parser's subcommands."""
    p = sub.add_parser(
        "verify",
        help="verify signed PDFs and edXML packages (files or folders), for auditors",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="file or folder")
    trust = p.add_argument_group("trust")
    trust.add_argument(
        "--trust",
        type=Path,
        action="append",
        metavar="FILE",
        help="trust anchor certificate (PEM, possibly several, or DER); repeatable; needed "
        "unless --trust-dir is given",
    )
    trust.add_argument(
        "--trust-dir",
        type=Path,
        action="append",
        metavar="DIR",
        help="folder of anchor certificates (*.pem, *.crt, *.cer, *.der); repeatable",
    )
    trust.add_argument(
        "--intermediate",
        type=Path,
        action="append",
        metavar="FILE",
        help="intermediate CA certificate the signatures do not carry; repeatable",
    )
    trust.add_argument(
        "--revocation",
        choices=["hard-fail", "soft-fail", "embedded-only"],
        default="soft-fail",
        help="soft-fail (default): fetch OCSP/CRL, an unreachable responder is not held "
        "against a signature; hard-fail: it is; embedded-only: no network, only the "
        "revocation data inside the files (archives, offline)",
    )
    trust.add_argument(
        "--at",
        metavar="ISO-DATETIME",
        help="validate as of this past moment, with a time zone "
        "(e.g. 2024-05-01T09:00:00+07:00): for archives",
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--json",
        action="store_true",
        help=f"print one JSON document ({RUN_SCHEMA}) with every report instead of the table",
    )
    out.add_argument(
        "--etsi-xml",
        type=Path,
        metavar="DIR",
        help="write an ETSI TS 119 102-2 XML report per PDF (and per PDF attachment of a "
        "package) into DIR",
    )
    out.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="write one printable HTML page: the summary, then every document's report",
    )
    p.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="processes verifying at once (default: the number of CPU cores)",
    )
    p.set_defaults(func=cmd_verify)
