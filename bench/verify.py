"""Verification benchmark: signatures verified per second on one core, beside pdfsig and xmlsec1.

    .venv/bin/python bench/verify.py              # 30 runs per file, 100 per tool (about a minute)
    .venv/bin/python bench/verify.py --quick      # 5 and 20 runs (seconds)
    .venv/bin/python bench/verify.py --json       # every number, as JSON on stdout
    .venv/bin/python bench/verify.py --profile 12 # then cProfile's top functions per file
    .venv/bin/python bench/verify.py --stages     # then CPU ms per stage (needs pyinstrument)

Files, made once per run with the test PKI (``python -m tests.support.pki``, a separate process
so its OCSP/CRL/TSA work is not counted as ours) and the leader's RSA-2048 key: a 1-page and a
50-page decision signed PAdES B-T with RSASSA-PSS, and a 400 KB edXML package (one non-PDF
attachment) signed with RSASSA-PSS and with RSA-SHA256 (xmlsec1 before 1.3 has no RSA-PSS; we
verify both).

Ours: :func:`signing.validate_pdf` / :func:`signing.validate_package` in a loop in this process
(one core), full validation with revocation ``soft-fail``. *Cold* is the first call after
:func:`signing.trust.clear_caches` (trust files parsed, OCSP/CRL fetched over HTTP from the PKI);
*warm* is the median of the following calls (OCSP responses and CRLs from our revocation cache).

Tools, same files, same run: ``pdfsig -nocert FILE`` (digest and signature value only: no chain,
no revocation, no modification analysis) and ``xmlsec1 --verify`` with the test root trusted.
Each run is a new process, so its start is timed separately, interleaved with the real runs, and
subtracted: for pdfsig, ``pdfsig -nocert`` on a tiny unsigned PDF (exec, poppler, file open); for
xmlsec1, ``xmlsec1 --verify`` with the same certificates on a tiny XML without a Signature.
Times are CPU time (user + system; ours from :func:`time.process_time`, the tools' from the
kernel's accounting of each child), which a shared machine disturbs less than wall time; cold is
wall time (it waits for the network). Medians throughout. The ratio is ours warm time ÷ the
tool's net time: how many times longer we take (target: ≤ 2 for PDFs).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import re
import resource
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.verify_stages import profile, stage_output, stages  # noqa: E402
from signing import (  # noqa: E402
    TrustSettings,
    install_fast_paths,
    validate_package,
    validate_pdf,
)
from signing.trust import clear_caches  # noqa: E402

PACKAGE_SIZE = 400 * 1024
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RESOLUTION_MS = 0.05  # net tool times below this are reported as "< 0.05 ms"


@dataclass
class Case:
    """One file and what it measured (milliseconds; CPU time unless named wall)."""

    name: str
    path: Path
    kind: str  # "pdf" | "package"
    tool: str | None  # "pdfsig" | "xmlsec1" | None
    size: int = 0
    cold_wall_ms: float = 0.0
    cold_cpu_ms: float = 0.0
    warm_cpu_ms: list[float] = field(default_factory=list)
    warm_wall_ms: list[float] = field(default_factory=list)
    tool_cpu_ms: list[float] = field(default_factory=list)
    tool_wall_ms: list[float] = field(default_factory=list)
    start_cpu_ms: list[float] = field(default_factory=list)
    start_wall_ms: list[float] = field(default_factory=list)
    offline_cpu_ms: list[float] = field(default_factory=list)  # packages, embedded-only
    note: str = ""

    @property
    def warm(self) -> float:
        return statistics.median(self.warm_cpu_ms)

    @property
    def start(self) -> float | None:
        return statistics.median(self.start_cpu_ms) if self.start_cpu_ms else None

    @property
    def tool_net(self) -> float | None:
        """The tool's CPU time per file minus its process-start baseline (medians)."""
        if not self.tool_cpu_ms:
            return None
        return statistics.median(self.tool_cpu_ms) - statistics.median(self.start_cpu_ms)

    @property
    def ratio(self) -> float | None:
        """How many times the tool's net time ours takes (> 1: we are slower)."""
        net = self.tool_net
        return None if net is None else self.warm / max(net, RESOLUTION_MS)


# ----- the test PKI, in its own process -----------------------------------------------------------


class PKIProcess:
    """``python -m tests.support.pki DIR``: makes the PKI in DIR and serves TSA, OCSP and CRLs."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-m", "tests.support.pki", str(directory)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.tsa_url = self._wait_for_urls()

    def _wait_for_urls(self, timeout: float = 120.0) -> str:
        assert self.process.stdout is not None
        deadline, line = time.monotonic() + timeout, b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 1.0)
            if ready:
                line = self.process.stdout.readline()
                match = re.search(rb"TSA (\S+)", line)
                if match:
                    return match.group(1).decode()
            if self.process.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"the test PKI did not start: {line!r}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# ----- files --------------------------------------------------------------------------------------


async def make_files(pki: PKIProcess, folder: Path) -> dict[str, Path]:
    """The signed files (PAdES B-T RSA-PSS; packages RSA-PSS and RSA-SHA256) and the baselines."""
    from schemas import build_document
    from signing import (
        AnchorPlacement,
        KeySource,
        SignOptions,
        async_sign_package,
        async_sign_pdf,
        open_key,
    )
    from tests.support.attacks import make_pdf
    from tests.support.pdfgen import official_document, signature_png
    from tests.support.pki import P12_PASSWORD

    folder.mkdir(parents=True, exist_ok=True)
    secret = P12_PASSWORD.decode()
    options = SignOptions(
        role="leader",
        level="B-T",
        tsa_url=pki.tsa_url,
        image=signature_png(),
        placement=AnchorPlacement("BỘ TRƯỞNG"),
    )
    files: dict[str, Path] = {}
    with open_key(KeySource(p12=pki.dir / "leader.p12"), secret) as key:
        for pages in (1, 50):
            files[f"pdf-{pages}"] = folder / f"quyet-dinh-{pages}-trang.pdf"
            signed = await async_sign_pdf(official_document(pages), key, options)
            files[f"pdf-{pages}"].write_bytes(signed)
        package = _package(build_document)
        for name, algorithm in (("package-pss", None), ("package-rsa", RSA_SHA256)):
            files[name] = folder / f"goi-400kb-{name.removeprefix('package-')}.edxml"
            signed = await async_sign_package(package, key, algorithm=algorithm)
            files[name].write_bytes(signed)
    files["tiny-pdf"] = folder / "tiny-unsigned.pdf"
    files["tiny-pdf"].write_bytes(make_pdf())
    files["tiny-xml"] = folder / "tiny-unsigned.xml"
    files["tiny-xml"].write_bytes(b"<?xml version='1.0' encoding='UTF-8'?><a>b</a>\n")
    return files


def _package(build_document: Callable[..., bytes]) -> bytes:
    """An unsigned package of about :data:`PACKAGE_SIZE` bytes (signature added later, ~3 KB)."""
    rng = random.Random(400)

    def build(raw: int) -> bytes:
        return build_document(
            sender="000.00.00.G22",
            recipients=["000.00.00.H49"],
            code_number="400",
            code_notation="VPCP-BENCH",
            subject="Gói tin 400 KB để đo tốc độ kiểm tra chữ ký",
            attachments=[("phu-luc.docx", "application/octet-stream", rng.randbytes(raw))],
        )

    overhead = len(build(0))
    raw = int((PACKAGE_SIZE - overhead - 3_000) * 3 / 4)
    return build(raw)


# ----- measuring ----------------------------------------------------------------------------------


def _verify(case: Case, trust: TrustSettings) -> tuple[str, str]:
    data = case.path.read_bytes()
    if case.kind == "pdf":
        report = validate_pdf(data, trust)
        return report.summary.indication, report.summary.message
    package = validate_package(data, trust)
    return package.indication, package.message


def measure_ours(case: Case, trust: TrustSettings, runs: int) -> None:
    """Cold (caches cleared) then ``runs`` warm validations, in this process, one core."""
    data = case.path.read_bytes()
    case.size = len(data)

    def once() -> tuple[str, float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        if case.kind == "pdf":
            indication = validate_pdf(data, trust).summary.indication
        else:
            indication = validate_package(data, trust).indication
        return (
            indication,
            (time.process_time() - cpu) * 1000,
            (time.perf_counter() - wall) * 1000,
        )

    clear_caches()
    indication, case.cold_cpu_ms, case.cold_wall_ms = once()
    if indication != "TOTAL-PASSED":
        raise RuntimeError(f"{case.name}: ours says {indication}: {_verify(case, trust)[1]}")
    for _ in range(runs):
        _, cpu, wall = once()
        case.warm_cpu_ms.append(cpu)
        case.warm_wall_ms.append(wall)


def _run_timed(argv: list[str]) -> tuple[float, float]:
    """(CPU ms, wall ms) of one run of ``argv``: the child's user + system time, from the
    kernel's accounting of waited-for children (no other child is reaped meanwhile)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return cpu * 1000, wall * 1000


def measure_tool(case: Case, argv: list[str], baseline: list[str], runs: int) -> None:
    """``runs`` runs of ``argv`` and of the process-start ``baseline``, interleaved."""
    for _ in range(runs):
        cpu, wall = _run_timed(baseline)
        case.start_cpu_ms.append(cpu)
        case.start_wall_ms.append(wall)
        cpu, wall = _run_timed(argv)
        case.tool_cpu_ms.append(cpu)
        case.tool_wall_ms.append(wall)


def pdfsig_argv(path: Path) -> list[str]:
    return ["pdfsig", "-nocert", str(path)]


def xmlsec_argv(path: Path, root: Path, issuing: Path) -> list[str]:
    return [
        "xmlsec1",
        "--verify",
        "--trusted-pem",
        str(root),
        "--untrusted-pem",
        str(issuing),
        str(path),
    ]


def check_tools(cases: list[Case], files: dict[str, Path], pki_dir: Path) -> None:
    """The tools must agree the signatures are valid, or the comparison means nothing.

    An xmlsec1 that cannot verify RSA-PSS (before 1.3) leaves that package without a tool.
    """
    for case in cases:
        if case.tool == "pdfsig":
            out = subprocess.run(pdfsig_argv(case.path), capture_output=True, timeout=60)
            if out.stdout.count(b"Signature is Valid") != 1:
                raise RuntimeError(f"pdfsig does not find {case.path.name} valid: {out.stdout!r}")
        elif case.tool == "xmlsec1":
            argv = xmlsec_argv(case.path, pki_dir / "root.pem", pki_dir / "issuing.pem")
            out = subprocess.run(argv, capture_output=True, timeout=60)
            if out.returncode == 0 and b"OK" in out.stderr:
                continue
            if "PSS" in case.name:
                case.tool, case.note = None, "n/a: this xmlsec1 has no RSA-PSS"
                continue
            raise RuntimeError(f"xmlsec1 does not verify {case.path.name}: {out.stderr!r}")
    base = subprocess.run(pdfsig_argv(files["tiny-pdf"]), capture_output=True, timeout=60)
    if b"does not contain any signatures" not in base.stdout:
        raise RuntimeError(f"pdfsig baseline: unexpected output {base.stdout!r}")


def measure_offline(case: Case, trust: TrustSettings, runs: int) -> None:
    """A package again with ``embedded-only`` (no network: the XML signature's revocation is then
    not checked), to show what the per-call fetching costs."""
    data = case.path.read_bytes()
    offline = trust.replace(revocation="embedded-only")
    validate_package(data, offline)
    for _ in range(runs):
        cpu = time.process_time()
        validate_package(data, offline)
        case.offline_cpu_ms.append((time.process_time() - cpu) * 1000)


# ----- output -------------------------------------------------------------------------------------


def _rate(ms: float | None) -> str:
    if ms is None:
        return "—"
    return f"{1000 / ms:,.0f}" if ms >= RESOLUTION_MS else f"> {1000 / RESOLUTION_MS:,.0f}"


def _ms(ms: float | None, digits: int = 1) -> str:
    if ms is None:
        return "—"
    return f"{ms:.{digits}f}" if ms >= RESOLUTION_MS else f"< {RESOLUTION_MS}"


def table(cases: list[Case], console: Console) -> None:
    out = Table(
        "file",
        "size",
        "ours sig/s\nper core\n(warm)",
        "ours warm\nCPU ms",
        "ours cold\nwall ms",
        "tool",
        "tool sig/s\n(net)",
        "tool net\nCPU ms",
        "process\nstart\nCPU ms",
        "ratio\nours ÷ tool",
        title="lienthong signature verification, one core",
    )
    for case in cases:
        net, ratio = case.tool_net, case.ratio
        verdict = ""
        if ratio is not None and case.kind == "pdf":
            verdict = " [green]✓[/]" if ratio <= 2 else " [red]✗[/]"
        out.add_row(
            case.name,
            f"{case.size / 1024:,.0f} KB",
            _rate(case.warm),
            _ms(case.warm),
            f"{case.cold_wall_ms:.0f}",
            case.tool or "—",
            _rate(net) if net is not None else case.note or "—",
            _ms(net, 2),
            _ms(case.start),
            (f"{ratio:.1f}×" + verdict) if ratio is not None else "—",
        )
    console.print(out)


def summary(cases: list[Case]) -> dict:
    items = []
    for case in cases:
        item = asdict(case)
        item["path"] = case.path.name
        item.update(
            warm_cpu_median_ms=case.warm,
            warm_cpu_min_ms=min(case.warm_cpu_ms),
            warm_wall_median_ms=statistics.median(case.warm_wall_ms),
            ours_sig_per_s=1000 / case.warm,
            tool_cpu_median_ms=statistics.median(case.tool_cpu_ms) if case.tool_cpu_ms else None,
            tool_cpu_min_ms=min(case.tool_cpu_ms) if case.tool_cpu_ms else None,
            start_cpu_median_ms=case.start,
            start_cpu_min_ms=min(case.start_cpu_ms) if case.start_cpu_ms else None,
            tool_wall_median_ms=(
                statistics.median(case.tool_wall_ms) if case.tool_wall_ms else None
            ),
            start_wall_median_ms=(
                statistics.median(case.start_wall_ms) if case.start_wall_ms else None
            ),
            tool_net_cpu_ms=case.tool_net,
            tool_sig_per_s=(
                1000 / max(case.tool_net, RESOLUTION_MS) if case.tool_net is not None else None
            ),
            ratio=case.ratio,
            offline_cpu_median_ms=(
                statistics.median(case.offline_cpu_ms) if case.offline_cpu_ms else None
            ),
        )
        items.append(item)
    pdfs = [c for c in cases if c.kind == "pdf" and c.ratio is not None]
    return {
        "cases": items,
        "unit": "milliseconds; CPU time (user + system) unless the name says wall",
        "target": "ours within 2x of pdfsig per PDF",
        "target_met": all((c.ratio or 0) <= 2 for c in pdfs) if pdfs else None,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "tools": {
            "pdfsig": _version(["pdfsig", "-v"]),
            "xmlsec1": _version(["xmlsec1", "--version"]),
        },
    }


def _version(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, timeout=10)
    except OSError:
        return None
    text = (out.stdout or out.stderr).decode(errors="replace").strip().splitlines()
    return text[0] if text else None


# ----- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 runs per file, 20 per tool")
    parser.add_argument("--runs", type=int, help="our warm runs per file (default 30)")
    parser.add_argument("--tool-runs", type=int, help="tool runs per file (default 100)")
    parser.add_argument("--json", action="store_true", help="print every number as JSON")
    parser.add_argument(
        "--profile", type=int, metavar="N", help="print cProfile's top N functions per file"
    )
    parser.add_argument(
        "--stages", action="store_true", help="then CPU ms per stage of each file (pyinstrument)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    runs = args.runs or (5 if args.quick else 30)
    tool_runs = args.tool_runs or (20 if args.quick else 100)
    missing = [t for t in ("pdfsig", "xmlsec1") if shutil.which(t) is None]
    if missing:
        print(f"missing tools: {', '.join(missing)} (apt install poppler-utils xmlsec1)")
        return 1
    if args.stages and importlib.util.find_spec("pyinstrument") is None:
        print("--stages needs pyinstrument: .venv/bin/pip install pyinstrument")
        return 1
    console = Console(stderr=args.json, width=None if sys.stdout.isatty() else 150)
    fast = install_fast_paths()  # as the hub's workers and ``lienthong verify`` do
    work = Path(tempfile.mkdtemp(prefix="lienthong-bench-verify-"))
    pki = None
    try:
        with console.status("starting the test PKI and signing the files"):
            pki = PKIProcess(work / "pki")
            files = asyncio.run(make_files(pki, work / "files"))
        trust = TrustSettings(
            anchors=[pki.dir / "root.pem"],
            intermediates=[pki.dir / "issuing.pem"],
            revocation="soft-fail",
        )
        cases = [
            Case("1-page PDF", files["pdf-1"], "pdf", "pdfsig"),
            Case("50-page PDF", files["pdf-50"], "pdf", "pdfsig"),
            Case("400 KB package, RSA-PSS", files["package-pss"], "package", "xmlsec1"),
            Case("400 KB package, RSA-SHA256", files["package-rsa"], "package", "xmlsec1"),
        ]
        check_tools(cases, files, pki.dir)
        _verify(cases[0], trust)  # warm up code paths (lazy imports) once, before any cold
        with console.status("measuring ours"):
            for case in cases:
                measure_ours(case, trust, runs)
                if case.kind == "package":
                    measure_offline(case, trust, runs)
        with console.status("measuring pdfsig and xmlsec1"):
            for case in cases:
                if case.tool == "pdfsig":
                    measure_tool(
                        case, pdfsig_argv(case.path), pdfsig_argv(files["tiny-pdf"]), tool_runs
                    )
                elif case.tool == "xmlsec1":
                    root, issuing = pki.dir / "root.pem", pki.dir / "issuing.pem"
                    measure_tool(
                        case,
                        xmlsec_argv(case.path, root, issuing),
                        xmlsec_argv(files["tiny-xml"], root, issuing),
                        tool_runs,
                    )
        result = summary(cases)
        result["fast_hex_reader"] = fast
        if args.stages:
            with console.status("profiling the stages"):
                result["stages"] = {c.name: stages(c, trust, max(runs, 20)) for c in cases}
        if args.json:
            print(json.dumps(result, indent=2, ensure_ascii=False))
        else:
            table(cases, console)
            _notes(cases, result, console, runs, tool_runs)
            for case in cases if args.stages else ():
                stage_output(case, result["stages"][case.name], console)
        if args.profile:
            for case in cases:
                console.rule(f"cProfile: {case.name}, {runs} warm runs")
                console.out(profile(case, trust, runs, args.profile), highlight=False)
    finally:
        if pki is not None:
            pki.stop()
        if args.keep:
            console.print(f"files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _notes(cases: list[Case], result: dict, console: Console, runs: int, tool_runs: int) -> None:
    load = result["load_average"][0]
    cpus = result["cpu_count"] or 1
    console.print(
        f"medians of {runs} runs (ours) and {tool_runs} runs (tools, interleaved with their "
        "process-start baseline, which is subtracted); ours includes chain, timestamp, "
        "revocation and modification checks, pdfsig -nocert only the digest and signature value."
    )
    state = "installed" if result["fast_hex_reader"] else "not installed (pyHanko not vetted)"
    console.print(f"fast hex-string reader (signing/pdf/fasthex.py): {state}.")
    package = next(c for c in cases if c.kind == "package")
    console.print(
        f"packages: the XML signature's chain check shares the trust caches (no OCSP/CRL request "
        f"when warm): warm {package.warm:.0f} ms CPU, "
        f"{statistics.median(package.warm_wall_ms):.0f} ms wall; "
        f"the same package with --revocation embedded-only: "
        f"{statistics.median(package.offline_cpu_ms):.0f} ms CPU."
    )
    met = result["target_met"]
    pdfs = ", ".join(f"{c.name} {c.ratio:.1f}×" for c in cases if c.kind == "pdf" and c.ratio)
    console.print(
        f"target (within 2× of pdfsig per PDF): {'[green]met[/]' if met else '[red]missed[/]'}"
        f" ({pdfs})"
    )
    if load > cpus * 0.5:
        console.print(
            f"[yellow]load average {load:.1f} on {cpus} core(s): the machine was shared, "
            "the numbers are noisy[/]"
        )


if __name__ == "__main__":
    sys.exit(main())
