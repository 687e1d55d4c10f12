"""CPU and memory accounting for ``bench/exchange.py``, from Linux's /proc (zeros elsewhere).

CPU is counted per process group: the hub processes (the ``lienthong serve`` processes the bench
started), their descendants (the forkserver and the parsing workers of the hub's process pool),
PostgreSQL and RabbitMQ (every process of that name on the machine), the bench itself, and
whatever else the machine did ("other"). Memory is the resident set (VmRSS) of the hub processes
and all their descendants, sampled in a thread.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SERVICES = {"postgres": "postgres", "beam.smp": "rabbitmq"}  # process name -> service
# the groups that cpu_ms_per_pkg_all adds up ("other" is shown beside them, never added)
ACCOUNTED = ("hub", "hub_workers", "postgres", "rabbitmq", "bench")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class ProcStat:
    """One line of /proc/PID/stat, the parts the bench uses (CPU in seconds)."""

    name: str
    ppid: int
    user: float
    system: float
    children: float  # CPU of children it has reaped (cutime + cstime)


def read_stat(pid: int) -> ProcStat | None:
    try:
        head, tail = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)
    except (OSError, ValueError):
        return None
    fields = tail.split()
    return ProcStat(
        head.split("(", 1)[1],
        int(fields[1]),
        int(fields[11]) / _TICK,
        int(fields[12]) / _TICK,
        (int(fields[13]) + int(fields[14])) / _TICK,
    )


def all_stats() -> dict[int, ProcStat]:
    """Every process on the machine (one pass over /proc, ~2-3 ms)."""
    stats = {}
    for entry in Path("/proc").glob("[0-9]*"):
        stat = read_stat(int(entry.name))
        if stat is not None:
            stats[int(entry.name)] = stat
    return stats


def descendants(roots: list[int], stats: dict[int, ProcStat] | None = None) -> list[int]:
    """Children, grandchildren, ... of ``roots`` (not the roots). The kernel's
    /proc/PID/task/*/children is often not built in, so this walks the parent ids of all."""
    stats = all_stats() if stats is None else stats
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        children.setdefault(stat.ppid, []).append(pid)
    found: list[int] = []
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found and child not in roots:
                found.append(child)
                todo.append(child)
    return found


def process_cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process, all threads."""
    stat = read_stat(pid)
    return (stat.user, stat.system) if stat else (0.0, 0.0)


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, iowait) CPU seconds of the whole machine since boot, all CPUs."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle, iowait = values[3], values[4]
    return (sum(values[:8]) - idle - iowait) / _TICK, iowait / _TICK


def services_cpu_seconds(stats: dict[int, ProcStat] | None = None) -> dict[str, float]:
    """CPU seconds of PostgreSQL's and RabbitMQ's processes, by service."""
    totals = dict.fromkeys(SERVICES.values(), 0.0)
    for stat in (all_stats() if stats is None else stats).values():
        service = SERVICES.get(stat.name)
        if service:
            totals[service] += stat.user + stat.system
    return totals


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds consumed so far, by whom."""

    at: float
    machine: tuple[float, float]
    services: dict[str, float]
    hub: tuple[float, float]  # user, system of the hub processes themselves
    hub_workers: float  # their descendants, and what those that ended had used
    bench: float

    @classmethod
    def take(cls, hub_pids: list[int]) -> CpuSample:
        stats = all_stats()
        roots = [stats[pid] for pid in hub_pids if pid in stats]
        workers = [stats[pid] for pid in descendants(hub_pids, stats)]
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return cls(
            time.perf_counter(),
            machine_cpu_seconds(),
            services_cpu_seconds(stats),
            (sum(s.user for s in roots), sum(s.system for s in roots)),
            sum(s.user + s.system + s.children for s in workers) + sum(s.children for s in roots),
            usage.ru_utime + usage.ru_stime,
        )

    def seconds_since(self, start: CpuSample) -> dict[str, float]:
        """CPU seconds used between ``start`` and this sample, by group; ``other`` is the
        machine's busy time that none of the groups account for."""
        use = {
            "machine": self.machine[0] - start.machine[0],
            "iowait": self.machine[1] - start.machine[1],
            "hub": sum(self.hub) - sum(start.hub),
            "hub_system": self.hub[1] - start.hub[1],
            "hub_workers": self.hub_workers - start.hub_workers,
            "bench": self.bench - start.bench,
        }
        use |= {name: self.services[name] - start.services[name] for name in self.services}
        use["other"] = max(0.0, use["machine"] - sum(use[name] for name in ACCOUNTED))
        return use

    def usage_since(self, start: CpuSample) -> dict[str, float]:
        """Percent of one core used between ``start`` and this sample."""
        wall = max(self.at - start.at, 1e-9)
        used = self.seconds_since(start)
        return {name: round(100 * seconds / wall, 1) for name, seconds in used.items()}


def ms_per_package(used: dict[str, float], packages: int) -> dict[str, float]:
    """CPU ms per package of each accounted group and of ``other``."""
    return {
        name: round(1000 * used[name] / packages, 2) for name in (*ACCOUNTED, "other") if packages
    }


def rss_bytes(pid: int) -> int:
    """VmRSS of a process (0 if it is gone or the kernel does not say)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class RssSampler:
    """Sums the VmRSS of the hub processes and all their descendants every ``interval``
    seconds in a thread (not on the event loop, which is busy submitting), keeping the peak.
    The process tree is looked up again every ``refresh`` seconds (a worker may be replaced)."""

    def __init__(self, roots: list[int], interval: float = 0.02, refresh: float = 2.0) -> None:
        self.roots = roots
        self.interval = interval
        self.refresh = refresh
        self.peak = 0
        self.samples = 0
        self._pids = [*roots, *descendants(roots)]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> int:
        return sum(rss_bytes(pid) for pid in self._pids)

    def _run(self) -> None:
        looked_up = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - looked_up >= self.refresh:
                self._pids = [*self.roots, *descendants(self.roots)]
                looked_up = time.monotonic()
            self.peak = max(self.peak, self.sample())
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
