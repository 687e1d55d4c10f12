"""``lienthong sign pdf|package``: sign one file, or every file of a folder with a progress bar.

The PIN or passphrase is never a command-line argument: it is read from the environment variable
named by ``--secret-env`` (default ``LIENTHONG_SIGN_SECRET``) or asked for at the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from signing.batch import quiet_library_logs, sign_all, sign_jobs
from signing.cli.tables import progress, sign_summary
from signing.errors import SigningError
from signing.keys import KeyHandle, KeySource, open_key
from signing.pdf.fasthex import install_fast_paths
from signing.pdf.options import LEVELS, ROLES, SignOptions
from signing.pdf.placement import AnchorPlacement, BoxPlacement, FieldPlacement, Placement
from signing.pdf.services import load_certificates
from signing.pdf.sign import async_sign_pdf_detailed
from signing.xml import async_sign_package

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


def _placement(args: argparse.Namespace) -> Placement | None:
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


def cmd_sign_pdf(args: argparse.Namespace) -> int:
    """Run ``lienthong sign pdf`` with parsed arguments; returns the exit code."""
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
    jobs = sign_jobs(args.input, args.output, (".pdf",))

    async def work(key: KeyHandle, src: Path) -> tuple[bytes, Sequence[str]]:
        signed = await async_sign_pdf_detailed(src, key, options)
        return signed.data, signed.warnings

    return _sign_files(args, jobs, work)


def cmd_sign_package(args: argparse.Namespace) -> int:
    """Run ``lienthong sign package`` with parsed arguments; returns the exit code."""
    jobs = sign_jobs(args.input, args.output, (".edxml", ".xml"))
    extra = [
        x509.load_der_x509_certificate(c.dump()) for c in load_certificates(args.extra_cert or ())
    ]

    async def work(key: KeyHandle, src: Path) -> tuple[bytes, Sequence[str]]:
        try:
            data = src.read_bytes()
        except OSError as exc:
            raise SigningError(
                "signing.input_unreadable", f"cannot read {src}: {exc.strerror or exc}"
            ) from None
        signed = await async_sign_package(
            data,
            key,
            algorithm=args.algorithm,
            intermediates=extra,
            replace_existing=args.replace,
        )
        return signed, ()

    return _sign_files(args, jobs, work)


def _sign_files(args: argparse.Namespace, jobs: list[tuple[Path, Path]], work) -> int:
    """Open the key once, sign every job (a progress bar for a folder), print the summary."""
    source = _source(args)
    # A token runs one private-key operation per session at a time.
    concurrency = 1 if source.pkcs11_lib else max(1, args.jobs)
    with (
        open_key(source, _secret(args, source)) as key,
        quiet_library_logs(),
        progress("signing", len(jobs)) as advance,
    ):
        results = asyncio.run(
            sign_all(
                jobs, lambda src: work(key, src), concurrency, force=args.force, on_done=advance
            )
        )
    return sign_summary(results)


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
        choices=list(ROLES),
        help="leader: handwritten signature image; agency: red seal over the left "
        "third of the leader's signature, agency name and time; attachment: top right "
        "of page 1, document number and time",
    )
    p.add_argument(
        "--level",
        default="B-T",
        choices=list(LEVELS),
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
