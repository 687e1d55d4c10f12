"""Where one warm validation spends its time, stage by stage (``bench/verify.py --stages``).

pyinstrument samples the stack every 0.2 ms while a validation runs in a loop; each sample goes
to the *step* (our code's top-level step, or pyHanko's part of a PDF signature) and the *work*
(what certvalidator, asn1crypto, signxml... were doing) of the innermost matching frame; for the
work, revocation checks win, with the paths of OCSP responders and CRL issuers in them. The
shares are of the sampled time; the bench scales them to the measured CPU median, so a row reads
"ms of CPU per validation". A column gives how much of each row is RFC 4518 preparation of
certificate names (asn1crypto's ``_ldap_string_prep``, pure Python, once per freshly parsed
name), which cuts across the stages.

pyinstrument is not a dependency of the project: ``.venv/bin/pip install pyinstrument``.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from signing import TrustSettings, validate_package, validate_pdf

if TYPE_CHECKING:
    from bench.verify import Case

# (label, function name, path fragment): the innermost frame that matches names the row.
STEPS = [
    ("read the PDF (xref, trailer)", "open_pdf", "signing/pdf/reading.py"),
    ("signature fields, CMS parse", "_signature_facts", "signing/validation/pdf.py"),
    ("signature fields, CMS parse", "enumerate_sig_fields", "pyhanko/sign/fields.py"),
    ("embedded revocation data", "embedded_revinfo", "signing/validation/revocation.py"),
    ("validation context", "validation_context", "signing/trust.py"),
    ("pyHanko: the signature", "async_validate_pdf_signature", "pyhanko/sign/validation"),
    ("pyHanko: its timestamp token", "collect_timing_info", "pyhanko/sign/validation"),
    ("pyHanko: document timestamp", "async_validate_pdf_timestamp", "pyhanko/sign/validation"),
    ("pyHanko: difference analysis", "review_file", "pyhanko/sign/diff_analysis"),
    ("our report (chain, revocation, policy)", "_report_signatures", "signing/validation/pdf.py"),
    ("our report (chain, revocation, policy)", "_report_timestamps", "signing/validation/pdf.py"),
    ("document digest for the report", "report", "signing/validation/pdf.py"),
    ("package: read, checks, model", "read_package", "schemas/__init__.py"),
    ("package: XML signature", "async_verify_package", "signing/xml.py"),
    ("package: attachments", "_attachments", "signing/validation/package.py"),
]
WORK = [
    ("CMS certificates, ESS signing-certificate", "extract_certs_for_validation", "generic_cms"),
    ("signature value and digest", "validate_sig_integrity", "generic_cms"),
    ("signature value and digest", "compute_digest", "pdf_embedded"),
    ("certificate path: build", "async_build_paths_lazy", "pyhanko_certvalidator/registry"),
    ("certificate path: build", "__anext__", "pyhanko_certvalidator/registry"),
    ("certificate path: validate", "intl_validate_path", "pyhanko_certvalidator/validate"),
    ("revocation: OCSP response", "verify_ocsp_response", "pyhanko_certvalidator/revinfo"),
    ("revocation: CRL", "verify_crl", "pyhanko_certvalidator/revinfo"),
    ("XML: signxml digest and signature", "verify", "signxml/verifier"),
    ("XML: structure checks", "_check_structure", "signing/xml.py"),
    ("XML: whole-package check", "_check_crypto", "signing/xml.py"),
    ("XML: parse (hardened reader)", "read_xml", "schemas/reader.py"),
    ("base64 decode + SHA-256", "decode_base64", "schemas/encoded.py"),
    ("base64 decode + SHA-256", "openssl_sha256", "<built-in>"),
]
# Revocation work includes validating the OCSP responder's and the CRL issuer's own paths:
# these markers win over the path markers below them.
REVOCATION = [m for m in WORK if m[0].startswith("revocation")]
NAME_PREP = ("_ldap_string_prep", "asn1crypto/x509.py")
OTHER = "(other)"


def _frames(stack: list[str]) -> list[tuple[str, str]]:
    out = []
    for frame in stack:
        parts = frame.split("\x00")
        out.append((parts[0], parts[1] if len(parts) > 1 else ""))
    return out


def _innermost(frames: list[tuple[str, str]], markers: list[tuple[str, str, str]]) -> str | None:
    for name, path in reversed(frames):
        for label, function, fragment in markers:
            if name == function and fragment in path:
                return label
    return None


def stage_table(
    call: Callable[[], object], runs: int
) -> dict[tuple[str, str], tuple[float, float]]:
    """``{(step, work): (share of time, share of it in name preparation)}`` over ``runs`` calls."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0002, async_mode="disabled")
    profiler.start()
    for _ in range(runs):
        call()
    session = profiler.stop()
    total = 0.0
    rows: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for stack, seconds in session.frame_records:
        frames = _frames(stack)
        if not any(name == "_validate" or name.startswith("async_validate") for name, _ in frames):
            continue  # the event loop's own start and stop, outside the validation
        work = _innermost(frames, REVOCATION) or _innermost(frames, WORK) or OTHER
        key = (_innermost(frames, STEPS) or OTHER, work)
        rows[key][0] += seconds
        if any(f == NAME_PREP[0] and NAME_PREP[1] in p for f, p in frames):
            rows[key][1] += seconds
        total += seconds
    return {k: (v[0] / total, v[1] / total) for k, v in rows.items()} if total else {}


def profile(case: Case, trust: TrustSettings, runs: int, top: int) -> str:
    """cProfile's top functions (own time, then cumulative) over ``runs`` warm validations."""
    data = case.path.read_bytes()
    call = validate_pdf if case.kind == "pdf" else validate_package
    call(data, trust)
    profiler = cProfile.Profile(
        time.process_time
    )  # CPU time: waits on a shared machine do not count
    profiler.enable()
    for _ in range(runs):
        call(data, trust)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def stages(case: Case, trust: TrustSettings, runs: int) -> list[dict]:
    """CPU ms per (step, work) of one warm validation: pyinstrument's shares (see
    :mod:`bench.verify_stages`) times the measured warm CPU median."""
    data = case.path.read_bytes()
    call = validate_pdf if case.kind == "pdf" else validate_package
    call(data, trust)
    shares = stage_table(lambda: call(data, trust), runs)
    rows = [
        {"step": step, "work": work, "ms": share * case.warm, "name_prep_ms": prep * case.warm}
        for (step, work), (share, prep) in shares.items()
    ]
    return sorted(rows, key=lambda row: -row["ms"])


def stage_output(case: Case, rows: list[dict], console: Console) -> None:
    out = Table(
        "step",
        "work",
        "CPU ms",
        "%",
        "of it: name\nprep ms",
        title=f"{case.name}: {case.warm:.1f} ms CPU per validation, by stage",
    )
    for row in rows:
        if row["ms"] >= 0.05:
            share = 100 * row["ms"] / case.warm
            out.add_row(
                row["step"],
                row["work"],
                f"{row['ms']:.2f}",
                f"{share:.0f}",
                f"{row['name_prep_ms']:.2f}",
            )
    console.print(out)
