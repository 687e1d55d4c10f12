"""Many files at once: verifying PDFs and packages across cores, signing a folder.

* :func:`verify_files` verifies files in a process pool of ``jobs`` workers (one per core by
  default), each file by :func:`verify_file` (never raises: a file that cannot be read or is
  neither a PDF nor XML is a ``TOTAL-FAILED/FORMAT_FAILURE`` result); what a file is comes from
  its first bytes, not its name. :func:`exit_code` is the run's: 0 passed, 1 failed, 2
  indeterminate.
* :func:`sign_all` signs jobs (:func:`sign_jobs`) a few at a time, refusing an output that is
  the input or that exists without ``force``, writing each atomically (:mod:`signing.outputs`).

Progress is reported through callbacks; drawing it is the command line's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from signing.errors import SigningError
from signing.outputs import check_output, same_file, write_output
from signing.pdf.fasthex import install_fast_paths
from signing.trust import TrustSettings
from signing.validation.caveats import document_warnings
from signing.validation.package import validate_package
from signing.validation.pdf import validate_pdf
from signing.validation.report import (
    INDETERMINATE,
    TOTAL_FAILED,
    TOTAL_PASSED,
    DocumentReport,
    PackageReport,
    attachment_documents,
    worst_indication,
)

__all__ = [
    "EXIT_ERROR",
    "SUFFIXES",
    "FileResult",
    "SignOutcome",
    "collect_files",
    "counts",
    "detect_kind",
    "documents",
    "exit_code",
    "quiet_library_logs",
    "report_warnings",
    "sign_all",
    "sign_jobs",
    "verify_file",
    "verify_files",
]

SUFFIXES = (".pdf", ".edxml", ".xml")
EXIT_PASSED, EXIT_FAILED, EXIT_INDETERMINATE, EXIT_ERROR = 0, 1, 2, 3
_EXIT = {TOTAL_PASSED: EXIT_PASSED, TOTAL_FAILED: EXIT_FAILED, INDETERMINATE: EXIT_INDETERMINATE}
_XML_START = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")  # byte order marks


# ----- verifying ---------------------------------------------------------------------------------


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
    warnings: tuple[str, ...] = ()  # every caveat in the report (signing.validation.caveats)

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
            report: Any = validate_pdf(data, trust)
            indication = report.summary.indication
            sub = report.summary.sub_indication
            message = report.summary.message
            if indication == INDETERMINATE and sub is None and not report.signatures:
                sub = "SIGNED_DATA_NOT_FOUND"  # as packages say it (EN 319 102-1)
        else:
            report = validate_package(data, trust)
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
    names), as :mod:`signing.validation.caveats` finds them in the report's fields."""
    if isinstance(report, DocumentReport):
        return document_warnings(report)
    out: list[str] = []
    for name, document in attachment_documents(report):
        if document is not None:
            out += [f"attachment {name}: {w}" for w in document_warnings(document)]
    return out


def documents(result: FileResult) -> list[tuple[str | None, DocumentReport | None]]:
    """(attachment name or None, PDF report) pairs: the file itself, or a package's PDFs."""
    report = result.report
    if report is None:
        return []
    if isinstance(report, DocumentReport):
        return [(None, report)]
    return list(attachment_documents(report))


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
def quiet_library_logs() -> Iterator[None]:
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
        ctx.set_forkserver_preload(["signing.validation.pdf", "signing.validation.package"])
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
        with quiet_library_logs():
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


def counts(results: Sequence[FileResult]) -> dict[str, int]:
    """How many files, and how many passed (with warnings), failed, are indeterminate."""

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


def exit_code(results: Sequence[FileResult]) -> int:
    """1 if any file failed, else 2 if any is indeterminate (or there is none), else 0."""
    worst = worst_indication(r.indication for r in results)
    return EXIT_INDETERMINATE if worst is None else _EXIT[worst]


# ----- signing -----------------------------------------------------------------------------------


def sign_jobs(src: Path, dst: Path, suffixes: tuple[str, ...]) -> list[tuple[Path, Path]]:
    """(input, output) pairs: one file, or every file of folder ``src`` with one of
    ``suffixes`` into folder ``dst`` (made if missing; never ``src`` itself)."""
    if src.is_dir():
        if same_file(src, dst):
            raise SigningError(
                "signing.output_is_input",
                f"the output folder {dst} is the input folder: signing never modifies its "
                "input; give another folder",
            )
        dst.mkdir(parents=True, exist_ok=True)
        files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
        if not files:
            raise SigningError("signing.nothing_to_sign", f"no {'/'.join(suffixes)} files in {src}")
        return [(p, dst / p.name) for p in files]
    if not src.is_file():
        raise SigningError("signing.input_missing", f"{src} does not exist")
    if dst.is_dir():
        dst = dst / src.name
    return [(src, dst)]


class SignOutcome(NamedTuple):
    """One file's result: ``code`` is "signed" or a ``signing.*`` code."""

    src: Path
    code: str
    detail: str  # the time taken, or the error message
    warnings: tuple[str, ...] = ()


async def sign_all(
    jobs: list[tuple[Path, Path]],
    work: Callable[[Path], Awaitable[tuple[bytes, Sequence[str]]]],
    concurrency: int,
    *,
    force: bool = False,
    on_done: Callable[[SignOutcome], None] | None = None,
) -> list[SignOutcome]:
    """Sign every job (``work`` returns the signed bytes and warnings to show), ``concurrency``
    at a time; ``on_done`` is called as each one finishes.

    An output that is the input, or that exists without ``force``, is refused before its file
    is signed; outputs are written atomically (:mod:`signing.outputs`).
    """
    results: list[SignOutcome] = []
    limit = asyncio.Semaphore(concurrency)
    done = on_done or (lambda _outcome: None)

    async def one(src: Path, dst: Path) -> None:
        async with limit:
            started = time.perf_counter()
            try:
                check_output(src, dst, force=force)
                data, warnings = await work(src)
                check_output(src, dst, force=force)  # the clerk may have moved files
                write_output(dst, data, force=force)
                took = f"{(time.perf_counter() - started):.2f} s"
                results.append(SignOutcome(src, "signed", took, tuple(warnings)))
            except SigningError as exc:
                results.append(SignOutcome(src, exc.code, exc.message))
            done(results[-1])

    await asyncio.gather(*(one(s, d) for s, d in jobs))
    return sorted(results)
