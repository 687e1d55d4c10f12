"""The hub side of ``bench/exchange.py``: the ``lienthong serve`` processes, watching
deliveries, submitting (closed loop at a fixed concurrency, open loop at a fixed rate) and
measuring one size against the hub."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

from adapters.client import HubClient
from bench.exchange_cpu import CpuSample, RssSampler, ms_per_package
from bench.exchange_report import STAGES, Result, console, percentile
from exchange.config import Settings

REPO = Path(__file__).resolve().parent.parent

# ----- the hub processes -----------------------------------------------------------------------


class HubProcess:
    """``lienthong serve`` in a child process, with the bench's settings in its environment."""

    def __init__(
        self,
        settings: Settings,
        workdir: Path,
        command: str | None = None,
        index: int = 0,
        processes: int = 1,
    ) -> None:
        self.settings = settings
        self.command = command
        self.processes = processes
        self.url = f"http://127.0.0.1:{settings.port}"
        self.log_path = workdir / f"hub-{index}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        if self.command:
            command = shlex.split(self.command)
        else:
            exe = Path(sys.executable).parent / "lienthong"
            command = [str(exe)] if exe.exists() else [shutil.which("lienthong") or "lienthong"]
        env = dict(os.environ)
        env.update(
            {
                "LIENTHONG_DATABASE_URL": self.settings.database_url,
                "LIENTHONG_DATABASE_SCHEMA": self.settings.database_schema,
                "LIENTHONG_AMQP_URL": self.settings.amqp_url,
                "LIENTHONG_BROKER_PREFIX": self.settings.broker_prefix,
                "LIENTHONG_QUEUE_TYPE": self.settings.queue_type,
                "LIENTHONG_BLOB_DIR": self.settings.blob_dir,
                "LIENTHONG_LOG_LEVEL": "WARNING",
            }
        )
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    *command,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.settings.port),
                    *(["--processes", str(self.processes)] if self.processes > 1 else []),
                ],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_healthy(self, session: aiohttp.ClientSession, timeout: float = 60.0) -> None:
        """Poll ``/readyz`` until it answers 200 (the schema migrated, the broker connected:
        ``/healthz`` answers before that); fail early if the process dies."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise RuntimeError(f"the hub exited with {code}:\n{self.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(f"{self.url}/readyz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"the hub did not become healthy in {timeout:g} s:\n{self.log_tail()}")

    @contextlib.asynccontextmanager
    async def profiled(self, output: Path | None) -> AsyncIterator[None]:
        """Sample the hub with py-spy (collapsed stacks in ``output``) while the block runs."""
        if output is None or self.proc is None:
            yield
            return
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        command = [spy, "record", "--pid", str(self.proc.pid), "--rate", "200"]
        command += ["--format", "raw", "--nonblocking", "--output", str(output)]
        recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        await asyncio.sleep(0.5)  # let it attach
        try:
            yield
        finally:
            recorder.send_signal(signal.SIGINT)
            _, err = await asyncio.to_thread(recorder.communicate)
            if not output.exists():
                console.print(f"[yellow]py-spy wrote no profile: {err.decode()[-500:]}[/]")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not stopped after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        for _ in range(100):
            if self.proc.poll() is not None:
                return
            await asyncio.sleep(0.1)
        self.proc.kill()
        self.proc.wait()


# ----- measuring the hub -----------------------------------------------------------------------


class DeliveryWatcher:
    """Follows ``deliveries`` by inbox_seq and notes when packages are delivered to everyone.

    The hub assigns inbox_seq under one advisory lock, so committed values only grow and a
    cursor misses nothing. ``done[package_id]`` is the ``time.perf_counter()`` of the first poll
    that saw the package delivered to all recipients.
    """

    def __init__(self, pool: asyncpg.Pool, recipients: int, poll_s: float) -> None:
        self.pool = pool
        self.wall_offset = time.time() - time.perf_counter()
        self.done: dict[str, float] = {}
        self.changed = asyncio.Event()
        self._recipients = recipients
        self._poll_s = poll_s
        self._cursor = 0
        self._seen: dict[str, int] = {}

    async def start_at_current(self) -> None:
        """Ignore deliveries made before now (warm-up packages)."""
        self._cursor = await self.pool.fetchval(
            "SELECT coalesce(max(inbox_seq), 0) FROM deliveries"
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Poll while the block runs (not during the ceiling, which gets the machine alone)."""
        task = asyncio.create_task(self._run(), name="delivery-watcher")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        async with self.pool.acquire() as conn:
            query = await conn.prepare(
                "SELECT inbox_seq, package_id::text FROM deliveries "
                "WHERE inbox_seq > $1 ORDER BY inbox_seq LIMIT 10000"
            )
            while True:
                rows = await query.fetch(self._cursor)
                now = time.perf_counter()
                for seq, package_id in rows:
                    self._cursor = seq
                    count = self._seen.get(package_id, 0) + 1
                    self._seen[package_id] = count
                    if count == self._recipients:
                        self.done[package_id] = now
                if rows:
                    self.changed.set()
                await asyncio.sleep(self._poll_s)

    async def wait_for(self, ids: set[str], timeout: float) -> bool:
        """Wait until every id in ``ids`` is complete; False on timeout."""
        deadline = time.monotonic() + timeout
        while not ids <= self.done.keys():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=min(left, 1.0))
        return True


# package id -> (POST start, perf_counter; POST start, Unix time; seconds until accepted)
Started = dict[str, tuple[float, float, float]]


async def submit_all(
    clients: list[HubClient],
    packages: list[bytes],
    concurrency: int,
    max_seconds: float = math.inf,
) -> tuple[Started, list[str], int]:
    """POST packages with ``concurrency`` in flight, spread over the hubs' clients, until all are
    sent or ``max_seconds`` have passed. Returns what was accepted, the errors, and how many were
    sent."""
    queue = list(reversed(packages))
    deadline = time.perf_counter() + max_seconds
    started: Started = {}
    errors: list[str] = []

    async def worker(client: HubClient) -> None:
        while queue and time.perf_counter() < deadline:
            package = queue.pop()
            t0, wall0 = time.perf_counter(), time.time()
            try:
                answer = await client.submit(package)
            except Exception as exc:  # report, do not stop the run
                errors.append(repr(exc))
                continue
            started[answer["id"]] = (t0, wall0, time.perf_counter() - t0)
            if answer.get("duplicate"):
                errors.append(f"package {answer['id']} was taken as a duplicate")

    await asyncio.gather(*(worker(clients[i % len(clients)]) for i in range(concurrency)))
    return started, errors, len(packages) - len(queue)


@dataclass(frozen=True)
class HubRun:
    """How one size is run against the hub."""

    timeout: float
    max_seconds: float
    profile: Path | None = None
    rss_interval: float = 0.02


def hub_pids(hubs: list[HubProcess]) -> list[int]:
    return [hub.pid for hub in hubs if hub.pid is not None]


async def measure_hub(
    clients: list[HubClient],
    hubs: list[HubProcess],
    watcher: DeliveryWatcher,
    result: Result,
    packages: list[bytes],
    warmup: list[bytes],
    run: HubRun,
) -> None:
    """Warm up, then measure one size: throughput, end-to-end and accept latencies, stages,
    CPU by process and the hub's memory."""
    pids = hub_pids(hubs)
    rss = RssSampler(pids, run.rss_interval)
    rss_cold = rss.sample()
    async with watcher.running():
        warm, warm_errors, _ = await submit_all(clients, warmup, result.concurrency)
        if warm_errors:
            raise RuntimeError(f"warm-up submissions failed: {warm_errors[:3]}")
        if not await watcher.wait_for(set(warm), run.timeout):
            raise RuntimeError(f"warm-up packages were not delivered:\n{hubs[0].log_tail()}")
        await watcher.start_at_current()
        async with hubs[0].profiled(run.profile):
            rss_baseline = rss.sample()
            cpu0 = CpuSample.take(pids)
            with rss:
                started, errors, sent = await submit_all(
                    clients, packages, result.concurrency, run.max_seconds
                )
                complete = await watcher.wait_for(set(started), run.timeout)
            cpu1 = CpuSample.take(pids)

    result.packages, result.failed, result.errors = sent, len(errors), errors[:5]
    result.time_limited = sent < len(packages)
    result.cpu_pct = cpu1.usage_since(cpu0)
    if rss_baseline:  # 0: no /proc
        result.rss_before_warmup_mb = round(rss_cold / 1e6, 1)
        result.rss_baseline_mb = round(rss_baseline / 1e6, 1)
        result.rss_peak_mb = round(max(rss.peak, rss_baseline) / 1e6, 1)
        result.rss_samples = rss.samples
        in_flight = result.concurrency * result.package_bytes
        result.mem_per_inflight = round(max(0, rss.peak - rss_baseline) / in_flight, 3)
    delivered = {pid: started[pid] for pid in started if pid in watcher.done}
    result.delivered = len(delivered)
    if not complete:
        missing = len(started) - len(delivered)
        result.errors.append(f"{missing} accepted packages not delivered in {run.timeout:g} s")
    if not delivered:
        return
    first = min(t0 for t0, _, _ in started.values())
    result.wall_s = max(watcher.done[pid] for pid in delivered) - first
    result.hub_pkg_s = len(delivered) / result.wall_s
    latencies = [(watcher.done[pid] - t0) * 1000 for pid, (t0, _, _) in delivered.items()]
    accepts = [seconds * 1000 for _, _, seconds in started.values()]
    result.p50_ms, result.p99_ms = percentile(latencies, 50), percentile(latencies, 99)
    result.accept_p50_ms, result.accept_p99_ms = percentile(accepts, 50), percentile(accepts, 99)
    used = cpu1.seconds_since(cpu0)
    result.hub_cpu_ms_per_pkg = 1000 * used["hub"] / len(delivered)
    if used["machine"]:  # 0: no /proc
        result.cpu_ms_per_pkg = ms_per_package(used, len(delivered))
        accounted = sum(v for k, v in result.cpu_ms_per_pkg.items() if k != "other")
        result.cpu_ms_per_pkg_all = round(accounted, 2)
    with contextlib.suppress(asyncpg.PostgresError):  # the hub's own timestamps, if it has them
        result.stages_ms = await stage_breakdown(watcher, delivered)


# ----- open loop: half load ----------------------------------------------------------------------


@dataclass(frozen=True)
class HalfLoad:
    """The open-loop phase after the closed-loop run of a size."""

    seconds: float  # about this long ...
    min_count: int  # ... but at least this many packages
    cap: int  # at most this many POSTs in flight
    arrivals: str  # "poisson" (exponential gaps) or "even" (1/rate apart)
    count: int | None = None  # packages, instead of seconds x rate
    seed: int = 16

    def packages_for(self, rate: float) -> int:
        return self.count or max(self.min_count, math.ceil(rate * self.seconds))


@dataclass
class OpenLoop:
    """What an open-loop run did, beside what the hub accepted."""

    started: Started = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    lags_ms: list[float] = field(default_factory=list)  # scheduled arrival -> POST start
    in_flight: int = 0
    max_in_flight: int = 0
    cap_hit: int = 0


async def submit_open(
    clients: list[HubClient], packages: list[bytes], rate: float, plan: HalfLoad
) -> OpenLoop:
    """POST ``packages`` at ``rate`` per second, each arrival its own task, whatever is still
    in flight (up to ``plan.cap``: an arrival beyond it waits, and is counted)."""
    rng = random.Random(plan.seed)
    slots = asyncio.Semaphore(plan.cap)
    run = OpenLoop()
    tasks: set[asyncio.Task] = set()

    async def post(client: HubClient, package: bytes, due: float) -> None:
        t0, wall0 = time.perf_counter(), time.time()
        run.lags_ms.append((t0 - due) * 1000)
        run.in_flight += 1
        run.max_in_flight = max(run.max_in_flight, run.in_flight)
        try:
            answer = await client.submit(package)
            run.started[answer["id"]] = (t0, wall0, time.perf_counter() - t0)
            if answer.get("duplicate"):
                run.errors.append(f"package {answer['id']} was taken as a duplicate")
        except Exception as exc:  # report, do not stop the run
            run.errors.append(repr(exc))
        finally:
            run.in_flight -= 1
            slots.release()

    due = time.perf_counter()
    for i, package in enumerate(packages):
        if i:
            due += rng.expovariate(rate) if plan.arrivals == "poisson" else 1 / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if slots.locked():
            run.cap_hit += 1
        await slots.acquire()
        task = asyncio.create_task(post(clients[i % len(clients)], package, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    return run


async def measure_half_load(
    clients: list[HubClient],
    watcher: DeliveryWatcher,
    result: Result,
    packages: list[bytes],
    plan: HalfLoad,
    timeout: float,
) -> None:
    """Open loop at half of ``result.hub_pkg_s``: end-to-end latency at a load the hub keeps."""
    rate = result.hub_pkg_s / 2
    result.half_arrivals, result.half_load_rate = plan.arrivals, round(rate, 2)
    result.half_planned, result.half_cap = len(packages), plan.cap
    async with watcher.running():
        run = await submit_open(clients, packages, rate, plan)
        complete = await watcher.wait_for(set(run.started), timeout)
    result.half_sent = len(packages)
    result.half_failed = len(run.errors)
    result.errors += [f"half load: {error}" for error in run.errors[:5]]
    result.half_max_in_flight, result.half_cap_hit = run.max_in_flight, run.cap_hit
    result.half_lag_p99_ms = round(percentile(run.lags_ms, 99), 2)
    delivered = {pid: t for pid, t in run.started.items() if pid in watcher.done}
    result.half_delivered = len(delivered)
    if not complete:
        missing = len(run.started) - len(delivered)
        result.errors.append(f"half load: {missing} packages not delivered in {timeout:g} s")
    starts = sorted(t0 for t0, _, _ in run.started.values())
    if len(starts) > 1:
        result.half_achieved_rate = round((len(starts) - 1) / (starts[-1] - starts[0]), 2)
    if not delivered:
        return
    latencies = [(watcher.done[pid] - t0) * 1000 for pid, (t0, _, _) in delivered.items()]
    result.half_p50_ms = percentile(latencies, 50)
    result.half_p99_ms = percentile(latencies, 99)
    result.half_accept_p99_ms = percentile([s * 1000 for _, _, s in delivered.values()], 99)


async def stage_breakdown(watcher: DeliveryWatcher, delivered: Started) -> dict:
    """p50/p99 of each stage, from the hub's own timestamps (packages, events, deliveries)."""
    rows = await watcher.pool.fetch(
        """
        SELECT p.id::text, extract(epoch FROM p.received_at),
               (SELECT extract(epoch FROM min(e.at)) FROM events e
                WHERE e.package_id = p.id AND e.event = 'routed'),
               (SELECT extract(epoch FROM max(d.delivered_at)) FROM deliveries d
                WHERE d.package_id = p.id)
        FROM packages p WHERE p.id = ANY($1::uuid[])
        """,
        list(delivered),
    )
    spans: dict[str, list[float]] = {name: [] for name in STAGES}
    for package_id, received, routed, done in rows:
        if routed is None or done is None:
            continue
        seen = watcher.done[package_id] + watcher.wall_offset
        marks = [delivered[package_id][1], float(received), float(routed), float(done), seen]
        for name, begin, end in zip(STAGES, marks, marks[1:], strict=False):
            spans[name].append((end - begin) * 1000)
    return {
        name: {"p50": percentile(values, 50), "p99": percentile(values, 99)}
        for name, values in spans.items()
    }
