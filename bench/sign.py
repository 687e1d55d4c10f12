"""Signing benchmark: documents/s for PDFs (PAdES B-B, B-T) and edXML packages (XML-DSig), PKCS#12
against PKCS#11, beside the raw cost of one private-key operation on the same key.

    .venv/bin/python bench/sign.py              # 50 documents a configuration (about two minutes)
    .venv/bin/python bench/sign.py --quick      # 3 a configuration (a smoke run, < 30 s)
    .venv/bin/python bench/sign.py --count 200 --json
    .venv/bin/python bench/sign.py --profile pdf-p12-1p-B-B-box   # cProfile of one row

The test PKI (``tests.support.pki``, its TSA on 127.0.0.1 in a thread of this process) and a
SoftHSM2 token holding the same "leader" key (RSA-2048) are created in a temporary folder and
removed at the end. Each configuration signs the same input ``--count`` times in a row, one at a
time, after one warm-up signature. Before each document, ``--raw-count``/``--count`` (rounded
up) calls of the key's own ``signer.async_sign_raw(data, "sha256")`` give the raw private-key
cost of that key store, so both are measured on the same machine at the same moments.
``ratio`` = ms per document / ms per raw operation.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from schemas import build_document  # noqa: E402
from signing import (  # noqa: E402
    AnchorPlacement,
    BoxPlacement,
    KeyHandle,
    KeySource,
    SignOptions,
    async_sign_package,
    async_sign_pdf,
    async_verify_package,
    open_key,
)
from tests.support.hsm import make_token  # noqa: E402
from tests.support.pdfgen import official_document, signature_png  # noqa: E402
from tests.support.pki import P12_PASSWORD, TestPKI, running_pki  # noqa: E402

#: Where the leader's signature goes on the last page: the box the tests use (no text search).
LEADER_BOX = BoxPlacement(-1, 350, 170, 500, 235)
ANCHOR = AnchorPlacement("BỘ TRƯỞNG")
ATTACHMENT_BYTES = 300_000  # base64 in the package: ~400 KB in all


@dataclass
class Case:
    """One configuration: what is signed, how, with which key."""

    id: str
    kind: str  # "PDF" or "package"
    store: str  # "PKCS#12" or "PKCS#11"
    key: KeyHandle
    key_name: str
    document: str
    level: str
    placement: str
    sign: Callable[[], Awaitable[bytes]]


@dataclass
class Result:
    """The measurements of one :class:`Case`."""

    id: str
    kind: str
    store: str
    key: str
    document: str
    level: str
    placement: str
    count: int
    docs_per_s: float
    ms_per_doc: float
    p95_ms: float
    output_bytes: int
    tsa_requests_per_doc: float
    raw_count: int
    raw_ops_per_s: float
    raw_ms: float
    ratio: float


async def timed(fn: Callable[[], Awaitable[object]], count: int) -> list[float]:
    """Seconds taken by each of ``count`` sequential awaits of ``fn()``, after one warm-up."""
    await fn()
    times = []
    for _ in range(count):
        start = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - start)
    return times


def raw_op(key: KeyHandle) -> Callable[[], Awaitable[bytes]]:
    """One raw private-key operation with the key's own pyHanko signer."""
    data = os.urandom(256)  # about the size of CMS signed attributes
    return lambda: key.signer.async_sign_raw(data, "sha256")


def bare_cost(private_key: object, count: int) -> float:
    """ms of one signature with ``cryptography``, the key parsed once (no signer around it)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    data = os.urandom(256)
    if isinstance(private_key, rsa.RSAPrivateKey):
        pss = padding.PSS(padding.MGF1(hashes.SHA256()), 32)

        def op() -> bytes:
            return private_key.sign(data, pss, hashes.SHA256())
    else:
        assert isinstance(private_key, ec.EllipticCurvePrivateKey)

        def op() -> bytes:
            return private_key.sign(data, ec.ECDSA(hashes.SHA256()))

    op()
    start = time.perf_counter()
    for _ in range(count):
        op()
    return (time.perf_counter() - start) / count * 1000


async def tsa_round_trip(pki: TestPKI, count: int) -> float:
    """ms of one RFC 3161 request to the test TSA, a new client each time (as a signer would)."""
    import hashlib

    from pyhanko.sign.timestamps import HTTPTimeStamper

    digest = hashlib.sha256(b"bench").digest()
    times = await timed(
        lambda: HTTPTimeStamper(pki.tsa_url).async_timestamp(digest, "sha256"), count
    )
    return statistics.mean(times) * 1000


def cpu_seconds() -> tuple[float, float] | None:
    """(busy CPU seconds of the whole machine, of this process and its children); Linux only."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    mine = os.times()
    return busy, mine.user + mine.system + mine.children_user + mine.children_system


def p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def check_pdf(signed: bytes, level: str) -> None:
    """One signature, with a signature timestamp at B-T."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    sigs = PdfFileReader(io.BytesIO(signed)).embedded_signatures
    if len(sigs) != 1:
        raise RuntimeError(f"expected one signature, found {len(sigs)}")
    unsigned = sigs[0].signer_info["unsigned_attrs"]
    stamped = any(a["type"].native == "signature_time_stamp_token" for a in unsigned or [])
    if stamped != (level == "B-T"):
        raise RuntimeError(f"signature timestamp present: {stamped}, at level {level}")


async def check_package(signed: bytes, pki: TestPKI) -> None:
    result = await async_verify_package(
        signed, trust_roots=[pki.root.cert], intermediates=[pki.issuing.cert]
    )
    if not result.valid:
        raise RuntimeError(f"the signed package does not verify: {result.message}")


def make_cases(
    pki: TestPKI, keys: dict[str, KeyHandle], docs: dict[str, bytes], package: bytes
) -> list[Case]:
    """The PDF rows (key store × pages × level, box placement, plus one anchor row), then the
    package rows (RSA-PSS on both key stores, ECDSA P-256 on PKCS#12)."""
    image = signature_png()
    cases = []
    rsa = "RSA-2048 PSS"
    for store, tag, extra in (("PKCS#12", "p12", ()), ("PKCS#11", "p11", (pki.issuing_pem,))):
        key = keys[tag]
        placements = [("box", LEADER_BOX)]
        for pages, data in docs.items():
            for level in ("B-B", "B-T"):
                if tag == "p12" and pages == "1p" and level == "B-B":
                    rows = [*placements, ("anchor", ANCHOR)]
                else:
                    rows = placements
                for name, placement in rows:
                    options = SignOptions(
                        role="leader",
                        level=level,
                        placement=placement,
                        image=image,
                        tsa_url=pki.tsa_url,
                        extra_certs=extra,
                    )
                    cases.append(
                        Case(
                            f"pdf-{tag}-{pages}-{level}-{name}",
                            "PDF",
                            store,
                            key,
                            rsa,
                            "1 page" if pages == "1p" else f"{pages[:-1]} pages",
                            level,
                            "box, last page" if name == "box" else f"anchor “{ANCHOR.text}”",
                            lambda d=data, k=key, o=options: async_sign_pdf(d, k, o),
                        )
                    )
    size = f"{len(package) / 1000:.0f} KB"
    for tag, store, key_name, name in (
        ("p12", "PKCS#12", rsa, "rsa"),
        ("p11", "PKCS#11", rsa, "rsa"),
        ("seal", "PKCS#12", "ECDSA P-256", "ecdsa"),
    ):
        key = keys[tag]
        chain = [pki.issuing.cert] if tag == "p11" else []  # the token holds the leaf only
        cases.append(
            Case(
                f"package-{tag if tag != 'seal' else 'p12'}-{name}",
                "package",
                store,
                key,
                key_name,
                size,
                "XML-DSig",
                "—",
                lambda k=key, c=chain: async_sign_package(package, k, intermediates=c),
            )
        )
    return cases


async def measure(
    case: Case, count: int, raw_count: int, pki: TestPKI, profile: bool
) -> tuple[Result, str | None]:
    """Signatures interleaved with raw key operations (``raw_count / count`` before each
    document, so both see the same machine); the result and, if asked, a profile."""
    signed = await case.sign()  # the warm-up, checked
    if case.kind == "PDF":
        check_pdf(signed, case.level)
    else:
        await check_package(signed, pki)
    raw = raw_op(case.key)
    await raw()
    per_doc = -(-raw_count // count)
    profiler = cProfile.Profile() if profile else None
    raw_times, times = [], []
    tsa_before = pki.requests["tsa"]
    for _ in range(count):
        for _ in range(per_doc):
            start = time.perf_counter()
            await raw()
            raw_times.append(time.perf_counter() - start)
        if profiler:
            profiler.enable()
        start = time.perf_counter()
        await case.sign()
        times.append(time.perf_counter() - start)
        if profiler:
            profiler.disable()
    tsa_requests = (pki.requests["tsa"] - tsa_before) / count
    report = None
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(20)
        report = out.getvalue()
    raw_ms = statistics.mean(raw_times) * 1000
    ms = statistics.mean(times) * 1000
    result = Result(
        id=case.id,
        kind=case.kind,
        store=case.store,
        key=case.key_name,
        document=case.document,
        level=case.level,
        placement=case.placement,
        count=count,
        docs_per_s=count / sum(times),
        ms_per_doc=ms,
        p95_ms=p95(times) * 1000,
        output_bytes=len(signed),
        tsa_requests_per_doc=tsa_requests,
        raw_count=len(raw_times),
        raw_ops_per_s=len(raw_times) / sum(raw_times),
        raw_ms=raw_ms,
        ratio=ms / raw_ms,
    )
    return result, report


HEADERS = (
    "id", "signing", "store", "key", "level", "placement", "n", "docs/s", "ms/doc", "p95 ms",
    "TSA/doc", "raw op/s", "raw ms", "ratio",
)  # fmt: skip


def cells(r: Result) -> list[str]:
    """One row of the table, as text."""
    return [
        r.id,
        f"{r.kind}, {r.document}",
        r.store,
        r.key,
        r.level,
        r.placement,
        str(r.count),
        f"{r.docs_per_s:.1f}",
        f"{r.ms_per_doc:.1f}",
        f"{r.p95_ms:.1f}",
        f"{r.tsa_requests_per_doc:g}",
        f"{r.raw_ops_per_s:.0f}",
        f"{r.raw_ms:.2f}",
        f"{r.ratio:.1f}×",
    ]


def table(results: list[Result]) -> Table:
    out = Table(title="lienthong signing: documents/s beside one raw private-key operation")
    for header in HEADERS:
        right = header in HEADERS[6:]
        out.add_column(header, justify="right" if right else "left", no_wrap=True)
    previous = None
    for r in results:
        if previous is not None and previous != r.kind:
            out.add_section()
        previous = r.kind
        out.add_row(*cells(r))
    return out


def markdown(results: list[Result]) -> str:
    """The same table in Markdown (for bench/README.md)."""
    lines = ["| " + " | ".join(HEADERS) + " |"]
    lines.append("|" + "|".join("---:" if h in HEADERS[6:] else "---" for h in HEADERS) + "|")
    lines += ["| " + " | ".join(cells(r)) + " |" for r in results]
    return "\n".join(lines)


async def run(pki: TestPKI, work: Path, args: argparse.Namespace) -> dict:
    """Build the inputs, open the keys, measure every case; the whole report as a dict."""
    token = make_token(work / "hsm", [pki.identity("leader")])
    docs = {"1p": official_document(pages=1), "50p": official_document(pages=50)}
    package = build_document(
        sender="000.00.00.G22",
        recipients=["000.00.00.H49"],
        code_number="1",
        code_notation="BENCH",
        subject="bench",
        attachments=[("scan.pdf", "application/pdf", os.urandom(ATTACHMENT_BYTES))],
    )
    secret = P12_PASSWORD.decode()
    p12 = KeySource(p12=pki.identity("leader").p12)
    p11 = KeySource(pkcs11_lib=token.module, token=token.label, key_label="leader")
    seal = KeySource(p12=pki.identity("seal").p12)
    results, profiles = [], {}
    with (
        open_key(p12, secret) as k12,
        open_key(p11, token.pin) as k11,
        open_key(seal, secret) as kseal,
    ):
        cases = make_cases(pki, {"p12": k12, "p11": k11, "seal": kseal}, docs, package)
        if args.profile and args.profile not in {c.id for c in cases}:
            raise SystemExit(f"--profile: no case {args.profile!r}; one of {[c.id for c in cases]}")
        for case in cases:
            if args.only and not any(part in case.id for part in args.only):
                continue
            result, report = await measure(
                case, args.count, args.raw_count, pki, case.id == args.profile
            )
            results.append(result)
            if report:
                profiles[case.id] = report
            if not args.json:
                print(
                    f"  {case.id}: {result.ms_per_doc:.1f} ms/doc, raw {result.raw_ms:.2f} ms",
                    file=sys.stderr,
                )
    bare_count = max(args.raw_count, 20)
    from importlib.metadata import version

    meta = {
        "python": platform.python_version(),
        "pyhanko": version("pyhanko"),
        "cryptography": version("cryptography"),
        "cpus": os.cpu_count(),
        "count": args.count,
        "raw_count": args.raw_count,
        "pdf_bytes": {k: len(v) for k, v in docs.items()},
        "package_bytes": len(package),
        "bare_rsa2048_pss_ms": bare_cost(pki.identity("leader").key, bare_count),
        "bare_ecdsa_p256_ms": bare_cost(pki.identity("seal").key, bare_count),
        "tsa_round_trip_ms": await tsa_round_trip(pki, max(args.raw_count // 5, 5)),
    }
    return {"meta": meta, "results": [asdict(r) for r in results], "profiles": profiles}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 documents a row: a smoke run")
    parser.add_argument("--count", type=int, help="documents signed per row (default 50)")
    parser.add_argument("--raw-count", type=int, help="raw key operations per row, at least (50)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument("--only", nargs="*", help="run only rows whose id contains one of these")
    parser.add_argument("--profile", metavar="ID", help="cProfile the signing loop of this row")
    args = parser.parse_args()
    args.count = args.count or (3 if args.quick else 50)
    args.raw_count = args.raw_count or (10 if args.quick else 50)
    if args.count < 1 or args.raw_count < 1:
        parser.error("counts must be positive")
    conf = os.environ.get("SOFTHSM2_CONF")
    started, cpu_before = time.perf_counter(), cpu_seconds()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="lienthong-bench-sign-") as tmp,
            running_pki(Path(tmp) / "pki") as pki,
        ):
            report = asyncio.run(run(pki, Path(tmp), args))
    finally:  # make_token pointed SOFTHSM2_CONF at the temporary token
        if conf is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = conf
    elapsed, cpu_after = time.perf_counter() - started, cpu_seconds()
    report["meta"]["seconds"] = round(elapsed, 1)
    if cpu_before and cpu_after:  # in % of one core, over the whole run
        others = (cpu_after[0] - cpu_before[0]) - (cpu_after[1] - cpu_before[1])
        report["meta"]["cpu_bench_pct"] = round((cpu_after[1] - cpu_before[1]) / elapsed * 100)
        report["meta"]["cpu_others_pct"] = round(max(others, 0) / elapsed * 100)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    results = [Result(**r) for r in report["results"]]
    console.print(table(results))
    m = report["meta"]
    console.print(
        "raw = the key's pyHanko signer.async_sign_raw(256 bytes, 'sha256'), interleaved with "
        "the documents of each row; ratio = ms/doc ÷ raw ms/op.\n"
        f"bare key operation with cryptography, key parsed once: RSA-2048 PSS "
        f"{m['bare_rsa2048_pss_ms']:.2f} ms, ECDSA P-256 {m['bare_ecdsa_p256_ms']:.2f} ms; "
        f"test TSA round trip (new client, TSA in this process): {m['tsa_round_trip_ms']:.1f} ms.\n"
        f"inputs: PDF 1 page {m['pdf_bytes']['1p']:,} B, 50 pages {m['pdf_bytes']['50p']:,} B; "
        f"package {m['package_bytes']:,} B. {m['cpus']} CPUs, Python {m['python']}, "
        f"pyHanko {m['pyhanko']}, cryptography {m['cryptography']}; {m['seconds']} s in all."
    )
    if "cpu_others_pct" in m:
        console.print(
            f"CPU over the run, in % of one core: this bench {m['cpu_bench_pct']} %, "
            f"other processes {m['cpu_others_pct']} %"
            + (" — the machine was shared: numbers are noisy." if m["cpu_others_pct"] > 20 else ".")
        )
    if args.markdown:
        print("\n" + markdown(results))
    for case_id, text in report["profiles"].items():
        console.print(f"\n[bold]cProfile of {case_id}[/bold] ({m['count']} documents)")
        print(text)


if __name__ == "__main__":
    main()
