"""``lienthong sign pdf|package``: sign one file, or every file of a folder with a progress bar.

The PIN or passphrase is never a command-line argument: it is read from the environment variable
named by ``--secret-env`` (default ``LIENTHONG_SIGN_SECRET``) or asked for at the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from signing.errors import SigningError
from signing.keys import KeyHandle, KeySource, open_key
from signing.outputs import check_output, same_file, write_output

__all__ = ["add_sign_commands"]

SECRET_ENV = "LIENTHONG_SIGN_SECRET"


def _key_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("key (a PKCS#12 file or a PKCS#11 token)")
    group.add_argument("--p12", type=Path, help="PKCS#12 file holding the key and certificate")
    group.add_argument(
        "--pkcs11-lib",
        help="PKCS#11 library of the token, e.g. "
        "/usr/lib/softhsm/libsofthsm2.so or the vendor's .so",
    )
    group.add_argument("--token", help="token label")
    group.add_argument("--key", dest="key_label", help="key label on the token")
    group.add_argument("--cert-label", help="certificate label (default: the key label)")
    group.add_argument(
        "--secret-env",
        default=SECRET_ENV,
        metavar="VAR",
        help=f"environment variable holding the PIN or passphrase (default "
        f"{SECRET_ENV}); asked at the terminal when unset",
    )
    group.add_argument(
        "--rsa-padding",
        choices=["pss", "pkcs1v15"],
        default="pss",
        help="RSA signature scheme: RSASSA-PSS (default, Circular 15/2025) or the "
        "older PKCS#1 v1.5 (only for receivers that need it)",
    )


def _force_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace output files that already exist (the input is never replaced)",
    )


def _source(args: argparse.Namespace) -> KeySource:
    return KeySource(
        p12=args.p12,
        pkcs11_lib=args.pkcs11_lib,
        token=args.token,
        key_label=args.key_label,
        cert_label=args.cert_label,
        rsa_padding=args.rsa_padding,
    )


def _secret(args: argparse.Namespace, source: KeySource) -> str | None:
    value = os.environ.get(args.secret_env)
    if value is not None:
        return value
    if sys.stdin.isatty():
        what = (
            f"PIN of token {source.token!r}" if source.pkcs11_lib else f"passphrase of {source.p12}"
        )
        return getpass.getpass(f"{what}: ")
    if source.pkcs11_lib:
        raise SigningError(
            "signing.secret_missing", f"no PIN: set {args.secret_env} or run at a terminal"
        )
    return None  # an unencrypted PKCS#12 file


def _placement(args: argparse.Namespace):
    from signing.appearance import AnchorPlacement, BoxPlacement, FieldPlacement

    chosen = [x for x in (args.box, args.field, args.anchor) if x]
    if len(chosen) > 1:
        raise SigningError("signing.bad_option", "give one of --box, --field, --anchor")
    if args.field:
        return FieldPlacement(args.field)
    if args.anchor:
        return AnchorPlacement(args.anchor)
    if args.box:
        try:
            page, x1, y1, x2, y2 = (float(v) for v in args.box.split(","))
        except ValueError:
            raise SigningError("signing.bad_option", "--box is PAGE,X1,Y1,X2,Y2 (points)") from None
        return BoxPlacement(int(page), x1, y1, x2, y2)
    return None


def _jobs(src: Path, dst: Path, suffixes: tuple[str, ...]) -> list[tuple[Path, Path]]:
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


class _Outcome(NamedTuple):
    """One file's result: ``code`` is "signed" or a ``signing.*`` code."""

    src: Path
    code: str
    detail: str  # the time taken, or the error message
    warnings: tuple[str, ...] = ()


async def _run_all(
    jobs: list[tuple[Path, Path]],
    work: Callable[[Path], Awaitable[tuple[bytes, Sequence[str]]]],
    concurrency: int,
    *,
    force: bool = False,
) -> list[_Outcome]:
    """Sign every job (``work`` returns the signed bytes and warnings to show).

    An output that is the input, or that exists without ``force``, is refused before its file
    is signed; outputs are written atomically (:mod:`signing.outputs`).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    results: list[_Outcome] = []
    limit = asyncio.Semaphore(concurrency)
    show = len(jobs) > 1 and sys.stderr.isatty()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show,
        transient=True,
    ) as progress:
        task = progress.add_task("signing", total=len(jobs))

        async def one(src: Path, dst: Path) -> None:
            async with limit:
                started = time.perf_counter()
                try:
                    check_output(src, dst, force=force)
                    data, warnings = await work(src)
                    check_output(src, dst, force=force)  # the clerk may have moved files
                    write_output(dst, data, force=force)
                    took = f"{(time.perf_counter() - started):.2f} s"
                    results.append(_Outcome(src, "signed", took, tuple(warnings)))
                except SigningError as exc:
                    results.append(_Outcome(src, exc.code, exc.message))
                progress.advance(task)

        await asyncio.gather(*(one(s, d) for s, d in jobs))
    return sorted(results)


@contextlib.contextmanager
def _quiet_library_logs() -> Iterator[None]:
    """No library log lines while signing: pyHanko logs every failed certificate check with a
    traceback, and each file's outcome is printed here, in plain words, with its code."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)


def _summary(results: list[_Outcome]) -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    failed = [r for r in results if r.code != "signed"]
    warned = [r for r in results if r.warnings]
    if len(results) == 1:
        (result,) = results
        if failed:
            print(f"error [{result.code}]: {result.detail}", file=sys.stderr)
            return 1
        print(f"signed {result.src.name} ({result.detail})")
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        return 0
    table = Table("file", "result", "detail", title="Signing summary")
    for result in results:
        if result.code != "signed":
            verdict = Text(result.code, style="red")
        elif result.warnings:
            verdict = Text(f"signed, {len(result.warnings)} warning(s)", style="yellow")
        else:
            verdict = Text("signed", style="green")
        detail = "\n".join([result.detail, *(f"warning: {w}" for w in result.warnings)])
        table.add_row(Text(result.src.name), verdict, Text(detail))
    Console().print(table)
    line = f"{len(results) - len(failed)} signed, {len(failed)} failed"
    if warned:
        line += f", {len(warned)} with warnings"
    print(line)
    return 1 if failed else 0


def cmd_sign_pdf(args: argparse.Namespace) -> int:
    from signing.fastpaths import install_fast_paths
    from signing.pdf import SignOptions, sign_pdf_detailed

    install_fast_paths()  # B-LT/B-LTA with missing revocation data validate what was signed
    options = SignOptions(
        allow_missing_revocation=args.allow_missing_revocation,
        role=args.role,
        level=args.level,
        placement=_placement(args),
        image=args.image,
        tsa_url=args.tsa,
        trust_roots=args.trust or (),
        extra_certs=args.extra_cert or (),
        reason=args.reason,
        location=args.location,
        document_number=args.document_number,
        agency_name=args.agency_name,
    )
    options.check()
    jobs = _jobs(args.input, args.output, (".pdf",))
    source = _source(args)

    async def work(key: KeyHandle, src: Path) -> tuple[bytes, Sequence[str]]:
        signed = await sign_pdf_detailed(src, key, options)
        return signed.data, signed.warnings

    with open_key(source, _secret(args, source)) as key, _quiet_library_logs():
        results = asyncio.run(
            _run_all(jobs, lambda src: work(key, src), _concurrency(args, source), force=args.force)
        )
    return _summary(results)


def cmd_sign_package(args: argparse.Namespace) -> int:
    from signing.pdf import load_certificates
    from signing.xmldsig import sign_package_async

    jobs = _jobs(args.input, args.output, (".edxml", ".xml"))
    source = _source(args)
    extra = [_to_crypto(c) for c in load_certificates(args.extra_cert or ())]

    async def work(key: KeyHandle, src: Path) -> tuple[bytes, Sequence[str]]:
        try:
            data = src.read_bytes()
        except OSError as exc:
            raise SigningError(
                "signing.input_unreadable", f"cannot read {src}: {exc.strerror or exc}"
            ) from None
        signed = await sign_package_async(
            data,
            key,
            algorithm=args.algorithm,
            intermediates=extra,
            replace_existing=args.replace,
        )
        return signed, ()

    with open_key(source, _secret(args, source)) as key, _quiet_library_logs():
        results = asyncio.run(
            _run_all(jobs, lambda src: work(key, src), _concurrency(args, source), force=args.force)
        )
    return _summary(results)


def _concurrency(args: argparse.Namespace, source: KeySource) -> int:
    # A token runs one private-key operation per session at a time.
    return 1 if source.pkcs11_lib else max(1, args.jobs)


def _to_crypto(cert):
    from cryptography import x509

    return x509.load_der_x509_certificate(cert.dump())


def add_sign_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``sign pdf`` and ``sign package`` under the main parser."""
    sign = sub.add_parser("sign", help="sign PDFs (PAdES) and packages (XML-DSig)").add_subparsers(
        dest="action", required=True, metavar="WHAT"
    )
    p = sign.add_parser(
        "pdf",
        help="sign a PDF, or every PDF of a folder, with a Decree 30 appearance",
        description="Examples:\n"
        "  export LIENTHONG_SIGN_SECRET=...   # or type the PIN when asked\n"
        "  lienthong sign pdf cv.pdf cv-signed.pdf --role leader --level B-T --tsa URL \\\n"
        "      --pkcs11-lib /usr/lib/vendor/libtoken.so --token VGCA --key leader \\\n"
        "      --image chu-ky.png --anchor 'BỘ TRƯỞNG'\n"
        "  lienthong sign pdf cv-signed.pdf cv-final.pdf --role agency --level B-LT --tsa URL \\\n"
        "      --trust root.pem --p12 con-dau.p12 --image con-dau.png --anchor 'BỘ TRƯỞNG'\n"
        "  lienthong sign pdf phu-luc/ phu-luc-ky/ --role attachment --document-number "
        "123/QĐ-UBND --level B-T --tsa URL --p12 con-dau.p12",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", type=Path, help="PDF file or folder of PDFs (never modified)")
    p.add_argument("output", type=Path, help="signed PDF file, or folder for a batch")
    p.add_argument(
        "--role",
        required=True,
        choices=["leader", "agency", "attachment"],
        help="leader: handwritten signature image; agency: red seal over the left "
        "third of the leader's signature, agency name and time; attachment: top right "
        "of page 1, document number and time",
    )
    p.add_argument(
        "--level",
        default="B-T",
        choices=["B-B", "B-T", "B-LT", "B-LTA"],
        help="PAdES baseline level (default B-T; B-LT/B-LTA for archives)",
    )
    p.add_argument("--image", type=Path, help="PNG: the handwritten signature or the seal")
    p.add_argument("--box", help="explicit place: PAGE,X1,Y1,X2,Y2 in points (page 1-based)")
    p.add_argument("--field", help="sign into this existing signature field")
    p.add_argument("--anchor", help="place relative to this text, e.g. the title line")
    p.add_argument("--tsa", help="RFC 3161 time-stamp authority URL (B-T and above)")
    p.add_argument(
        "--trust",
        type=Path,
        action="append",
        help="trust anchor (PEM/DER), repeatable; needed for B-LT and B-LTA",
    )
    p.add_argument(
        "--extra-cert",
        type=Path,
        action="append",
        help="intermediate CA certificate the key's chain lacks, repeatable",
    )
    p.add_argument(
        "--allow-missing-revocation",
        action="store_true",
        help="B-LT/B-LTA: sign even when no OCSP/CRL answer can be had for a certificate of "
        "the chain (it names none, or none answers); the output then says which, since an "
        "offline verifier will find the signature INDETERMINATE",
    )
    p.add_argument("--document-number", help="number/notation shown by the attachment role")
    p.add_argument(
        "--agency-name",
        help="agency name shown by the agency role (default: the certificate's organisation)",
    )
    p.add_argument("--reason")
    p.add_argument("--location")
    p.add_argument("--jobs", type=int, default=4, help="files signed at once in a batch")
    _force_option(p)
    _key_options(p)
    p.set_defaults(func=cmd_sign_pdf)

    p = sign.add_parser(
        "package",
        help="sign an edXML package (or a folder of them) with XML-DSig",
        description="Adds an enveloped XML signature (exclusive C14N, RSA-PSS by default, "
        "ECDSA for EC keys) as the last element of edXMLHeader; nothing else changes.",
    )
    p.add_argument("input", type=Path, help="package file or folder (.edxml/.xml)")
    p.add_argument("output", type=Path, help="signed package file, or folder for a batch")
    p.add_argument("--algorithm", help="signature method URI (default: follows the key)")
    p.add_argument(
        "--replace", action="store_true", help="replace a signature the package already carries"
    )
    p.add_argument(
        "--extra-cert",
        type=Path,
        action="append",
        help="intermediate CA certificate to put in KeyInfo, repeatable",
    )
    p.add_argument("--jobs", type=int, default=4)
    _force_option(p)
    _key_options(p)
    p.set_defaults(func=cmd_sign_package)
