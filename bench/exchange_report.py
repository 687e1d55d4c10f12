"""The results of ``bench/exchange.py``, its targets, and the table it prints."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

SHARED_WARNING = 20.0  # % of a core used by unrelated processes that makes a run suspect
STAGES = {
    "accepted": "POST start -> package row inserted (upload, fsync, parse, checks)",
    "outbox": "row inserted -> dispatcher starts publishing its references",
    "broker": "publishing -> last of the 3 deliveries recorded (confirm, consume, inbox txn)",
    "visible": "last delivery recorded -> seen committed by the bench's poll",
}
console = Console(stderr=True, highlight=False)  # progress and warnings; results go to stdout


@dataclass
class Result:
    """One package size: the hub's numbers and the broker's ceiling. ``None`` = not measured."""

    size_label: str
    package_bytes: int
    planned: int
    concurrency: int
    packages: int = 0  # submitted in the measured run
    delivered: int = 0
    failed: int = 0
    time_limited: bool = False
    hub_pkg_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    accept_p50_ms: float = 0.0
    accept_p99_ms: float = 0.0
    wall_s: float = 0.0
    stages_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    hub_cpu_ms_per_pkg: float = 0.0  # the hub processes themselves (event loops), not workers
    # Percent of one core, during the hub run and during the ceiling run: machine (busy), iowait,
    # hub, hub_system, hub_workers, bench, postgres, rabbitmq, other (the rest of the machine).
    cpu_pct: dict[str, float] = field(default_factory=dict)
    # CPU ms per delivered package of the hub run: hub + hub_workers + postgres + rabbitmq +
    # bench; the split (with "other", which is not in the sum) in cpu_ms_per_pkg.
    cpu_ms_per_pkg_all: float | None = None
    cpu_ms_per_pkg: dict[str, float] = field(default_factory=dict)
    # VmRSS of the hub processes and their descendants, MB (10^6 B): before the warm-up, just
    # before the measured run (after the warm-up) and the peak during it; then
    # (peak - baseline) / (concurrency x package_bytes).
    rss_before_warmup_mb: float | None = None
    rss_baseline_mb: float | None = None
    rss_peak_mb: float | None = None
    rss_samples: int = 0
    mem_per_inflight: float | None = None
    # Open loop at half the measured pkg/s, after the closed-loop run.
    half_arrivals: str | None = None  # "poisson" or "even"
    half_load_rate: float | None = None  # arrivals per second asked for
    half_achieved_rate: float | None = None  # POSTs started per second
    half_planned: int = 0
    half_sent: int = 0
    half_delivered: int = 0
    half_failed: int = 0
    half_p50_ms: float | None = None
    half_p99_ms: float | None = None
    half_accept_p99_ms: float | None = None
    half_lag_p99_ms: float | None = None  # scheduled arrival -> POST start
    half_max_in_flight: int = 0
    half_cap: int = 0
    half_cap_hit: int = 0  # arrivals that had to wait because the cap was in flight
    ceiling_msgs: int = 0
    ceiling_msg_s: float = 0.0
    ceiling_confirm_p50_ms: float = 0.0
    ceiling_confirm_p99_ms: float = 0.0
    ceiling_cpu_pct: dict[str, float] = field(default_factory=dict)
    ratio_pct: float = 0.0
    targets_met: dict[str, bool] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    """A target of issue 16 for one result field, at one package size (± 10 %)."""

    key: str
    size: int
    limit: float
    below: bool  # met when the value is below the limit (else: at least the limit)
    strict: bool
    text: str
    unit: str

    def applies(self, package_bytes: int) -> bool:
        return abs(package_bytes - self.size) <= 0.1 * self.size

    def met(self, value: float) -> bool:
        if self.below:
            return value < self.limit if self.strict else value <= self.limit
        return value > self.limit if self.strict else value >= self.limit

    @property
    def name(self) -> str:
        return f"{self.key}@{self.size // 1024}k"

    @property
    def label(self) -> str:
        op = ("<" if self.strict else "≤") if self.below else (">" if self.strict else "≥")
        return f"{self.text} {op} {self.limit:g}{self.unit} at {self.size // 1024} KB"


KB = 1024
TARGETS = (
    Target("ratio_pct", 400 * KB, 33.0, False, False, "hub pkg/s", " % of the broker ceiling"),
    Target("ratio_pct", 10 * KB, 10.0, False, False, "hub pkg/s", " % of the broker ceiling"),
    Target("half_p99_ms", 400 * KB, 250.0, True, True, "p99 at half load", " ms"),
    Target("cpu_ms_per_pkg_all", 400 * KB, 8.0, True, False, "CPU, all processes,", " ms/pkg"),
    Target("mem_per_inflight", 400 * KB, 2.0, True, False, "hub memory per in-flight", "× size"),
)


def check_targets(result: Result) -> None:
    """Fill ``result.targets_met`` for the targets at its size that were measured."""
    for target in TARGETS:
        value = getattr(result, target.key)
        if target.applies(result.package_bytes) and value is not None:
            result.targets_met[target.name] = target.met(value)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


def _mark(result: Result, key: str) -> str:
    met = [v for name, v in result.targets_met.items() if name.startswith(key + "@")]
    return (" ✓" if all(met) else " ✗") if met else ""


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def print_table(results: list[Result], meta: dict) -> None:
    """The table, the targets, then how it was measured and where the time and the CPU went."""
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    hubs = meta["hub_processes"]
    table = Table(
        title="lienthong: submit -> delivered into 3 inboxes vs. raw broker ceiling"
        + (f" ({hubs} hub processes)" if hubs > 1 else "")
    )
    columns = ("size", "packages", "conc.", "hub pkg/s", "p50 ms", "p99 ms", "ceiling msg/s")
    columns += ("ratio %", "CPU ms/pkg all", "half load p50/p99 ms", "mem ×size")
    for name in columns:
        table.add_column(name, justify="left" if name == "size" else "right")
    for r in results:
        half = "–"
        if r.half_p99_ms is not None:
            half = f"{r.half_p50_ms:.0f}/{r.half_p99_ms:.0f}{_mark(r, 'half_p99_ms')}"
        table.add_row(
            f"{r.size_label} ({r.package_bytes:,} B)",
            f"{r.delivered}/{r.packages}" + ("*" if r.time_limited else ""),
            str(r.concurrency),
            f"{r.hub_pkg_s:.1f}",
            f"{r.p50_ms:.0f}",
            f"{r.p99_ms:.0f}",
            f"{r.ceiling_msg_s:.0f}",
            f"{r.ratio_pct:.1f}{_mark(r, 'ratio_pct')}",
            _num(r.cpu_ms_per_pkg_all, ".1f") + _mark(r, "cpu_ms_per_pkg_all"),
            half,
            _num(r.mem_per_inflight, ".2f") + _mark(r, "mem_per_inflight"),
        )
    out.print(table)
    for target in TARGETS:
        seen = [r for r in results if target.name in r.targets_met]
        verdict = ", ".join(
            f"{r.size_label} {getattr(r, target.key):.3g}"
            + (" ✓" if r.targets_met[target.name] else " ✗")
            for r in seen
        )
        out.print(f"target: {target.label}: {verdict or 'not measured'}")
    if any(r.time_limited for r in results):
        out.print("* delivered/submitted: submitting stopped at --max-seconds before --count")
    out.print(f"measured: {meta['method']}")
    for key in ("cpu", "memory", "half_load"):
        out.print(f"{key.replace('_', ' ')}: {meta[key]}")
    out.print(f"note: {meta['claim_check']}")
    out.print("stages: " + "; ".join(f"{k} = {v}" for k, v in STAGES.items()))
    for r in results:
        print_details(out, r, meta)
    out.print(
        f"{meta['cpus']} CPUs, Python {meta['python']}, RabbitMQ {meta.get('rabbitmq', '?')}, "
        f"{meta['queue_type']} queues"
    )


def print_details(out: Console, r: Result, meta: dict) -> None:
    """The lines under the table for one size."""
    stages = ", ".join(f"{k} {v['p50']:.0f}/{v['p99']:.0f}" for k, v in r.stages_ms.items())
    out.print(
        f"[bold]{r.size_label}[/]: accept (POST→202) p50/p99 {r.accept_p50_ms:.0f}/"
        f"{r.accept_p99_ms:.0f} ms; stages p50/p99 ms: {stages or 'n/a'}; ceiling "
        f"{r.ceiling_msgs} msgs, confirm p50/p99 {r.ceiling_confirm_p50_ms:.1f}/"
        f"{r.ceiling_confirm_p99_ms:.1f} ms"
    )
    cpu, ceiling, per = r.cpu_pct, r.ceiling_cpu_pct, r.cpu_ms_per_pkg
    if cpu:
        out.print(
            f"  CPU, % of one core, hub run ({r.wall_s:.1f} s): hub {cpu['hub']:.0f} "
            f"(system {cpu['hub_system']:.0f}; {r.hub_cpu_ms_per_pkg:.1f} ms/package), "
            f"hub workers {cpu['hub_workers']:.0f}, postgres {cpu['postgres']:.0f}, "
            f"rabbitmq {cpu['rabbitmq']:.0f}, bench {cpu['bench']:.0f}, other "
            f"{cpu['other']:.0f}; machine busy {cpu['machine']:.0f} of {100 * (meta['cpus'] or 1)}"
        )
    if per:
        split = ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in per.items() if k != "other")
        out.print(
            f"  CPU ms/package: all {_num(r.cpu_ms_per_pkg_all, '.1f')} = {split} "
            f"(other {per['other']:.1f}, not counted)"
        )
    if ceiling:
        out.print(
            f"  CPU during the ceiling: rabbitmq {ceiling['rabbitmq']:.0f}, bench "
            f"{ceiling['bench']:.0f}, other {ceiling['other']:.0f}, iowait "
            f"{ceiling['iowait']:.0f}"
        )
    if r.rss_peak_mb is not None:
        out.print(
            f"  hub memory (RSS, hub + workers): {_num(r.rss_before_warmup_mb, '.0f')} MB before "
            f"the warm-up, {r.rss_baseline_mb:.0f} MB after it, peak {r.rss_peak_mb:.0f} MB "
            f"({r.rss_samples} samples) -> {_num(r.mem_per_inflight, '.2f')} × the "
            f"{r.concurrency} × {r.package_bytes:,} B in flight"
        )
    if r.half_load_rate is not None:
        cap = f"{r.half_cap_hit} arrivals waited for the cap of {r.half_cap} in flight"
        out.print(
            f"  half load ({r.half_arrivals} arrivals at {r.half_load_rate:.1f}/s, "
            f"{_num(r.half_achieved_rate, '.1f')}/s started): {r.half_delivered}/{r.half_sent} "
            f"delivered, p50/p99 {_num(r.half_p50_ms, '.0f')}/{_num(r.half_p99_ms, '.0f')} ms, "
            f"accept p99 {_num(r.half_accept_p99_ms, '.0f')} ms; start lag p99 "
            f"{_num(r.half_lag_p99_ms, '.1f')} ms; at most {r.half_max_in_flight} in flight"
            + (
                f"; [yellow]{cap}[/]"
                if r.half_cap_hit
                else f" (none waited for the cap of {r.half_cap})"
            )
        )
    other = max(cpu.get("other", 0.0), ceiling.get("other", 0.0))
    if other > SHARED_WARNING:
        out.print(
            f"  [yellow]other processes used up to {other:.0f} % of a core: the machine was "
            "shared, these numbers are noisy; run again on a quiet machine[/]"
        )
    for error in r.errors:
        out.print(f"  [red]{error}[/]")
