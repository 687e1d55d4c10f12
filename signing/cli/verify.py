"""``lienthong verify PATH...``: verify signed PDFs and edXML packages, for auditors.

Each PATH is a file or a folder (walked recursively for ``*.pdf``, ``*.edxml`` and ``*.xml``).
What a file is comes from its first bytes (``%PDF-`` or XML), not from its name. Several files
are verified in parallel, one process per core (:func:`signing.batch.verify_files`), with a
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
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

from signing.batch import (
    EXIT_ERROR,
    EXIT_INDETERMINATE,
    FileResult,
    collect_files,
    exit_code,
    verify_files,
)
from signing.cli.tables import printable, progress, verify_table
from signing.errors import SigningError, TrustError
from signing.outputs import write_output
from signing.reports.etsi import write_etsi_reports
from signing.reports.html import run_html
from signing.reports.json import RUN_SCHEMA, run_json
from signing.trust import TrustSettings

__all__ = ["add_verify_command", "cmd_verify"]


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
    print(f"lienthong verify: error: {printable(message)}", file=sys.stderr)
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
    results = _verify_with_progress(files, trust, jobs)
    seconds = time.perf_counter() - started
    etsi_files = None
    try:
        if args.etsi_xml is not None:
            etsi_files = write_etsi_reports(results, args.etsi_xml)
        if args.html is not None:
            page = run_html(results, trust, generated_at=generated_at)
            args.html.parent.mkdir(parents=True, exist_ok=True)
            write_output(args.html, page.encode("utf-8"), force=True)
    except OSError as exc:
        return _error(f"cannot write the reports: {exc}")
    except SigningError as exc:  # signing.output_unwritable
        return _error(f"cannot write the reports: {exc.message}")
    if args.json:
        document = run_json(results, trust, jobs=jobs, seconds=seconds, etsi_files=etsi_files)
        sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
        sys.stdout.flush()
    else:
        verify_table(results, seconds, jobs)
    return exit_code(results)


def _verify_with_progress(files: list[str], trust: TrustSettings, jobs: int) -> list[FileResult]:
    with progress("verifying", len(files), remaining=True) as advance:
        return verify_files(files, trust, jobs=jobs, on_done=advance)


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
