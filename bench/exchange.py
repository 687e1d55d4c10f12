"""Benchmark: submit -> delivered into 3 inboxes, beside the raw RabbitMQ ceiling, in one run.

    .venv/bin/python -m bench.exchange              # defaults (at most about 2 minutes)
    .venv/bin/python -m bench.exchange --quick      # smoke run (< 20 s)
    .venv/bin/python bench/exchange.py --sizes 400k --count 300 --json

The hub runs as separate ``lienthong serve`` processes with their own schema, broker prefix and
blob folder; all of them are removed at the end, also on failure. See ``bench/README.md``.
"""

# ruff: noqa: E402 (the path fix below must run before the imports)
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: bench/ on sys.path would shadow the `exchange` package
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import platform
import resource
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field

import aio_pika
import aiohttp
import asyncpg
from rich.console import Console
from rich.table import Table

from adapters.client import HubClient
from exchange.auth import issue_credentials
from exchange.broker import Broker
from exchange.config import Settings, load_settings
from exchange.registry import Agency
from exchange.store import PostgresCredentials, PostgresRegistry
from exchange.store import database as db
from schemas import build_document

REPO = Path(__file__).resolve().parent.parent
SENDER = Agency("000.00.00.G01", "Bộ Nội vụ (bench)", None, "central")
RECIPIENTS = (
    Agency("000.00.00.H49", "UBND tỉnh Quảng Ninh (bench)", None, "province"),
    Agency("000.00.10.H49", "UBND thành phố Hạ Long (bench)", "000.00.00.H49", "district"),
    Agency("000.05.10.H49", "UBND phường Hồng Gai (bench)", "000.00.10.H49", "commune"),
)
TARGET_RATIO = 33.0  # % of the broker ceiling at 400 KB: the target
SHARED_WARNING = 20.0  # % of a core used by unrelated processes that makes a run suspect
DEFAULT_COUNTS = {10 * 1024: 2000, 400 * 1024: 600}
QUICK_COUNTS = {10 * 1024: 200, 400 * 1024: 80}
METHOD = (
    "delivery observed by polling `deliveries` (inbox_seq cursor, all 3 recipients in one "
    "indexed query) through asyncpg every {poll_ms:g} ms; latency = POST start -> first poll "
    "that sees the package delivered to all 3 recipients (resolution ~{poll_ms:g} ms); "
    "pkg/s = delivered packages / (first POST start -> last delivery seen)"
)
CLAIM_CHECK = (
    "the hub stores each body once (fsynced file) and publishes 3 references of ~100 B, one per "
    "recipient (claim check); the ceiling publishes the full body once per message into one "
    "durable quorum queue, publish-only, with confirms"
)
STAGES = {
    "accepted": "POST start -> package row inserted (upload, fsync, parse, checks)",
    "outbox": "row inserted -> dispatcher starts publishing its references",
    "broker": "publishing -> last of the 3 deliveries recorded (confirm, consume, inbox txn)",
    "visible": "last delivery recorded -> seen committed by the bench's poll",
}
SERVICES = {"postgres": "postgres", "beam.smp": "rabbitmq"}  # process name -> service
console = Console(stderr=True, highlight=False)


# ----- results and small helpers ---------------------------------------------------------------


@dataclass
class Result:
    """One package size: the hub's numbers and the broker's ceiling."""

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
    hub_cpu_ms_per_pkg: float = 0.0
    # Percent of one core, during the hub run and during the ceiling run: machine (busy), iowait,
    # hub, hub_system, bench, postgres, rabbitmq, other (everything else on the machine).
    cpu_pct: dict[str, float] = field(default_factory=dict)
    ceiling_msgs: int = 0
    ceiling_msg_s: float = 0.0
    ceiling_confirm_p50_ms: float = 0.0
    ceiling_confirm_p99_ms: float = 0.0
    ceiling_cpu_pct: dict[str, float] = field(default_factory=dict)
    ratio_pct: float = 0.0
    errors: list[str] = field(default_factory=list)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


def parse_size(text: str) -> int:
    """``10k`` -> 10240, ``1m`` -> 1048576, ``5000`` -> 5000."""
    text = text.strip().lower().removesuffix("b")
    factor = {"k": 1024, "m": 1024**2}.get(text[-1:], 1)
    return int(float(text[:-1] if factor > 1 else text) * factor)


def size_label(size: int) -> str:
    if size % 1024**2 == 0:
        return f"{size // 1024**2} MB"
    return f"{size // 1024} KB" if size % 1024 == 0 else f"{size} B"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----- packages --------------------------------------------------------------------------------


def build_packages(size: int, count: int, first_number: int) -> list[bytes]:
    """``count`` distinct document packages of about ``size`` bytes to the 3 recipients.

    Each has its own CodeNumber (so its own DocumentId) and random attachment bytes.
    """

    def one(number: int, payload: bytes) -> bytes:
        return build_document(
            sender=SENDER.code,
            recipients=[r.code for r in RECIPIENTS],
            code_number=str(number),
            code_notation="BENCH-LT",
            subject="V/v đo hiệu năng liên thông văn bản",
            attachments=[("dinh-kem.bin", "application/octet-stream", payload)],
        )

    # The envelope's size barely varies: measure it once, then size the attachment to fit.
    probe = b"x" * 300
    overhead = len(one(first_number, probe)) - len(base64.b64encode(probe))
    raw = max(1, (size - overhead) * 3 // 4)
    return [one(first_number + i, os.urandom(raw)) for i in range(count)]


# ----- CPU accounting (Linux /proc; zeros elsewhere) -------------------------------------------


def process_cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process, all threads."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, iowait) CPU seconds of the whole machine since boot, all CPUs."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    idle, iowait = values[3], values[4]
    return (sum(values[:8]) - idle - iowait) / tick, iowait / tick


def services_cpu_seconds() -> dict[str, float]:
    """CPU seconds of PostgreSQL's and RabbitMQ's processes, by service."""
    totals = dict.fromkeys(SERVICES.values(), 0.0)
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, tail = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        service = SERVICES.get(head.split("(", 1)[1])
        if service:
            fields = tail.split()
            totals[service] += (int(fields[11]) + int(fields[12])) / tick
    return totals


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds consumed so far, by whom."""

    at: float
    machine: tuple[float, float]
    services: dict[str, float]
    hub: tuple[float, float]
    bench: float

    @classmethod
    def take(cls, hubs: list[HubProcess]) -> CpuSample:
        times = [hub.cpu_seconds() for hub in hubs]
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return cls(
            time.perf_counter(),
            machine_cpu_seconds(),
            services_cpu_seconds(),
            (sum(t[0] for t in times), sum(t[1] for t in times)),
            usage.ru_utime + usage.ru_stime,
        )

    def usage_since(self, start: CpuSample) -> dict[str, float]:
        """Percent of one core used between ``start`` and this sample."""
        wall = max(self.at - start.at, 1e-9)
        use = {
            "machine": self.machine[0] - start.machine[0],
            "iowait": self.machine[1] - start.machine[1],
            "hub": sum(self.hub) - sum(start.hub),
            "hub_system": self.hub[1] - start.hub[1],
            "bench": self.bench - start.bench,
        }
        use |= {name: self.services[name] - start.services[name] for name in self.services}
        known = use["hub"] + use["bench"] + sum(use[name] for name in self.services)
        use["other"] = max(0.0, use["machine"] - known)
        return {name: round(100 * seconds / wall, 1) for name, seconds in use.items()}


# ----- the hub processes -----------------------------------------------------------------------


class HubProcess:
    """``lienthong serve`` in a child process, with the bench's settings in its environment."""

    def __init__(
        self, settings: Settings, workdir: Path, command: str | None = None, index: int = 0
    ) -> None:
        self.settings = settings
        self.command = command
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
                [*command, "serve", "--host", "127.0.0.1", "--port", str(self.settings.port)],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_healthy(self, session: aiohttp.ClientSession, timeout: float = 60.0) -> None:
        """Poll ``/healthz`` until it answers 200; fail early if the process dies."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise RuntimeError(f"the hub exited with {code}:\n{self.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(f"{self.url}/healthz") as resp:
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

    def cpu_seconds(self) -> tuple[float, float]:
        return process_cpu_seconds(self.proc.pid) if self.proc else (0.0, 0.0)

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


async def measure_hub(
    clients: list[HubClient],
    hubs: list[HubProcess],
    watcher: DeliveryWatcher,
    result: Result,
    packages: list[bytes],
    warmup: list[bytes],
    run: HubRun,
) -> None:
    """Warm up, then measure one size: throughput, end-to-end and accept latencies, stages."""
    async with watcher.running():
        warm, warm_errors, _ = await submit_all(clients, warmup, result.concurrency)
        if warm_errors:
            raise RuntimeError(f"warm-up submissions failed: {warm_errors[:3]}")
        if not await watcher.wait_for(set(warm), run.timeout):
            raise RuntimeError(f"warm-up packages were not delivered:\n{hubs[0].log_tail()}")
        await watcher.start_at_current()
        async with hubs[0].profiled(run.profile):
            cpu0 = CpuSample.take(hubs)
            started, errors, sent = await submit_all(
                clients, packages, result.concurrency, run.max_seconds
            )
            complete = await watcher.wait_for(set(started), run.timeout)
            cpu1 = CpuSample.take(hubs)

    result.packages, result.failed, result.errors = sent, len(errors), errors[:5]
    result.time_limited = sent < len(packages)
    result.cpu_pct = cpu1.usage_since(cpu0)
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
    result.hub_cpu_ms_per_pkg = 1000 * (sum(cpu1.hub) - sum(cpu0.hub)) / len(delivered)
    with contextlib.suppress(asyncpg.PostgresError):  # the hub's own timestamps, if it has them
        result.stages_ms = await stage_breakdown(watcher, delivered)


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


# ----- the broker ceiling ----------------------------------------------------------------------


async def broker_ceiling(settings: Settings, result: Result, count: int) -> None:
    """Persistent messages of the package's size, with publisher confirms, to a durable queue of
    the hub's type on a topic exchange; ``result.concurrency`` publishes in flight."""
    prefix = f"{settings.broker_prefix}.ceiling"
    key = RECIPIENTS[0].routing_key
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.declare_exchange(
            f"{prefix}.packages", aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(
            f"{prefix}.inbox", durable=True, arguments={"x-queue-type": settings.queue_type}
        )
        try:
            await queue.bind(exchange, key)
            body = os.urandom(result.package_bytes)

            async def publisher(n: int, confirms: list[float]) -> None:
                for _ in range(n):
                    t0 = time.perf_counter()
                    await exchange.publish(
                        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=key,
                        mandatory=True,
                    )
                    confirms.append((time.perf_counter() - t0) * 1000)

            async def publish(total: int) -> tuple[float, list[float]]:
                confirms: list[float] = []
                share, extra = divmod(total, result.concurrency)
                t0 = time.perf_counter()
                await asyncio.gather(
                    *(publisher(share + (i < extra), confirms) for i in range(result.concurrency))
                )
                return time.perf_counter() - t0, confirms

            await publish(min(count, max(20, result.concurrency * 2)))  # warm-up
            await queue.purge()
            elapsed, confirms = await publish(count)
            result.ceiling_msgs = count
            result.ceiling_msg_s = count / elapsed
            result.ceiling_confirm_p50_ms = percentile(confirms, 50)
            result.ceiling_confirm_p99_ms = percentile(confirms, 99)
        finally:
            with contextlib.suppress(Exception):
                await queue.delete(if_unused=False, if_empty=False)
            with contextlib.suppress(Exception):
                await exchange.delete()
    finally:
        await connection.close()


# ----- the run ---------------------------------------------------------------------------------


async def register(settings: Settings) -> tuple[str, str]:
    """Create the schema, register the 4 agencies; returns the sender's client id and secret."""
    await db.create_database(settings)
    await db.migrate(settings)
    pool = await db.connect(settings, min_size=1, max_size=2)
    try:
        await PostgresRegistry(pool).upsert([SENDER, *RECIPIENTS])
        creds = await issue_credentials(PostgresCredentials(pool), SENDER.code)
    finally:
        await pool.close()
    return creds.client_id, creds.client_secret


async def start_hubs(
    args: argparse.Namespace, settings: Settings, workdir: Path, hubs: list[HubProcess]
) -> None:
    """Start ``args.hubs`` hub processes (appended to ``hubs`` at once, for the clean-up) and
    wait until they answer. The first starts alone: it creates the schema and any dev key."""
    async with aiohttp.ClientSession() as session:
        for i in range(args.hubs):
            port = args.port + i if args.port else free_port()
            hubs.append(HubProcess(settings.replace(port=port), workdir, args.hub_command, i))
            hubs[-1].start()
            if i == 0:
                await hubs[0].wait_healthy(session)
        await asyncio.gather(*(hub.wait_healthy(session) for hub in hubs[1:]))
    for hub in hubs:
        console.print(f"hub pid {hub.proc.pid} on {hub.url}")


async def cleanup(settings: Settings, hubs: list[HubProcess]) -> None:
    """Stop the hubs, delete their queues and exchange, drop the schema (each best effort)."""
    for hub in hubs:
        await hub.stop()
    try:
        broker = Broker(settings)
        await broker.connect()
        try:
            await broker.delete_topology([a.code for a in (SENDER, *RECIPIENTS)])
        finally:
            await broker.close()
    except Exception as exc:
        console.print(f"[yellow]cleanup: broker topology not removed: {exc!r}[/]")
    try:
        await db.drop_schema(settings)
    except Exception as exc:
        console.print(f"[yellow]cleanup: schema not dropped: {exc!r}[/]")


async def run(args: argparse.Namespace) -> tuple[list[Result], dict]:
    """The whole benchmark; everything it creates is removed before it returns or raises."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)  # clean up too
    tag = secrets.token_hex(4)
    workdir = Path(tempfile.mkdtemp(prefix=f"lienthong-bench-{tag}-"))
    settings = load_settings().replace(
        database_schema=f"bench_{tag}",
        broker_prefix=f"bench.{tag}",
        blob_dir=str(workdir / "blobs"),
        host="127.0.0.1",
    )
    meta = {
        "schema": settings.database_schema,
        "broker_prefix": settings.broker_prefix,
        "queue_type": settings.queue_type,
        "hub_processes": args.hubs,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "method": METHOD.format(poll_ms=args.poll_ms),
        "claim_check": CLAIM_CHECK,
        "stages": STAGES,
        "target_ratio_pct_at_400k": TARGET_RATIO,
    }
    hubs: list[HubProcess] = []
    results: list[Result] = []
    try:
        client_id, client_secret = await register(settings)
        await start_hubs(args, settings, workdir, hubs)
        connector = aiohttp.TCPConnector(limit=max(100, args.concurrency * 2))
        pool = await db.connect(settings, min_size=1, max_size=2)
        try:
            async with aiohttp.ClientSession(connector=connector) as session:
                clients = [
                    HubClient(hub.url, client_id, client_secret, session=session) for hub in hubs
                ]
                for client in clients:
                    await client.token()
                watcher = DeliveryWatcher(pool, len(RECIPIENTS), args.poll_ms / 1000)
                for index, size in enumerate(args.sizes):
                    results.append(
                        await measure_size(args, settings, hubs, clients, watcher, index, size)
                    )
        finally:
            await pool.close()
        meta["rabbitmq"] = await rabbitmq_version(settings)
    except Exception:
        for hub in hubs:
            console.print(f"[red]hub {hub.url} log (tail):[/]\n{hub.log_tail()}")
        raise
    finally:
        await cleanup(settings, hubs)
        shutil.rmtree(workdir, ignore_errors=True)
    return results, meta


async def measure_size(
    args: argparse.Namespace,
    settings: Settings,
    hubs: list[HubProcess],
    clients: list[HubClient],
    watcher: DeliveryWatcher,
    index: int,
    size: int,
) -> Result:
    """Ceiling first, then the hub, for one package size."""
    label = size_label(size)
    count = args.count or (QUICK_COUNTS if args.quick else DEFAULT_COUNTS).get(size, 300)
    warm_count = max(10, args.concurrency)
    console.print(f"[bold]{label}[/]: building {count} + {warm_count} packages ...")
    packages = build_packages(size, count + warm_count, 1_000_000 * (index + 1))
    warmup, packages = packages[:warm_count], packages[warm_count:]
    result = Result(label, len(packages[0]), count, args.concurrency)

    ceiling_count = args.ceiling_count or count
    console.print(f"{label}: broker ceiling, {ceiling_count} persistent messages, confirms ...")
    await asyncio.sleep(args.settle)
    cpu0 = CpuSample.take(hubs)
    await broker_ceiling(settings, result, ceiling_count)
    result.ceiling_cpu_pct = CpuSample.take(hubs).usage_since(cpu0)

    console.print(f"{label}: hub, {count} packages x {len(RECIPIENTS)} recipients ...")
    await asyncio.sleep(args.settle)
    profile = None
    if args.profile_hub:
        args.profile_hub.mkdir(parents=True, exist_ok=True)
        profile = args.profile_hub / f"hub-{label.replace(' ', '').lower()}.txt"
    hub_run = HubRun(args.timeout, args.max_seconds, profile)
    await measure_hub(clients, hubs, watcher, result, packages, warmup, hub_run)
    if result.ceiling_msg_s:
        result.ratio_pct = 100 * result.hub_pkg_s / result.ceiling_msg_s
    return result


async def rabbitmq_version(settings: Settings) -> str:
    with contextlib.suppress(Exception):
        connection = await aio_pika.connect(settings.amqp_url)
        try:
            props = connection.transport.connection.server_properties
            return str(props.get("version", "?"))
        finally:
            await connection.close()
    return "?"


# ----- output ----------------------------------------------------------------------------------


def print_table(results: list[Result], meta: dict) -> None:
    """The table, then how it was measured and where the time and the CPU went."""
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    hubs = meta["hub_processes"]
    table = Table(
        title="lienthong: submit -> delivered into 3 inboxes vs. raw broker ceiling"
        + (f" ({hubs} hub processes)" if hubs > 1 else "")
    )
    columns = ("size", "packages", "concurrency", "hub pkg/s", "p50 ms", "p99 ms")
    for name in (*columns, "broker ceiling msg/s", "ratio %"):
        table.add_column(name, justify="left" if name == "size" else "right")
    for r in results:
        ratio = f"{r.ratio_pct:.1f}"
        if r.package_bytes >= 400 * 1024 * 0.9:
            ratio += " ✓" if r.ratio_pct >= TARGET_RATIO else " ✗"
        table.add_row(
            f"{r.size_label} ({r.package_bytes:,} B)",
            f"{r.delivered}/{r.packages}" + ("*" if r.time_limited else ""),
            str(r.concurrency),
            f"{r.hub_pkg_s:.1f}",
            f"{r.p50_ms:.0f}",
            f"{r.p99_ms:.0f}",
            f"{r.ceiling_msg_s:.0f}",
            ratio,
        )
    out.print(table)
    out.print(f"target: hub ≥ {TARGET_RATIO:g} % of the ceiling at 400 KB (✓ met, ✗ missed)")
    if any(r.time_limited for r in results):
        out.print("* delivered/submitted: submitting stopped at --max-seconds before --count")
    out.print(f"measured: {meta['method']}")
    out.print(f"note: {meta['claim_check']}")
    out.print("stages: " + "; ".join(f"{k} = {v}" for k, v in STAGES.items()))
    for r in results:
        stages = ", ".join(f"{k} {v['p50']:.0f}/{v['p99']:.0f}" for k, v in r.stages_ms.items())
        out.print(
            f"[bold]{r.size_label}[/]: accept (POST→202) p50/p99 {r.accept_p50_ms:.0f}/"
            f"{r.accept_p99_ms:.0f} ms; stages p50/p99 ms: {stages or 'n/a'}; ceiling "
            f"{r.ceiling_msgs} msgs, confirm p50/p99 {r.ceiling_confirm_p50_ms:.1f}/"
            f"{r.ceiling_confirm_p99_ms:.1f} ms"
        )
        cpu, ceiling = r.cpu_pct, r.ceiling_cpu_pct
        if cpu:
            out.print(
                f"  CPU, % of one core, hub run ({r.wall_s:.1f} s): hub {cpu['hub']:.0f} "
                f"(system {cpu['hub_system']:.0f}; {r.hub_cpu_ms_per_pkg:.1f} ms/package), "
                f"postgres {cpu['postgres']:.0f}, rabbitmq {cpu['rabbitmq']:.0f}, "
                f"bench {cpu['bench']:.0f}, other {cpu['other']:.0f}; machine busy "
                f"{cpu['machine']:.0f} of {100 * (meta['cpus'] or 1)}"
            )
        if ceiling:
            out.print(
                f"  CPU during the ceiling: rabbitmq {ceiling['rabbitmq']:.0f}, bench "
                f"{ceiling['bench']:.0f}, other {ceiling['other']:.0f}, iowait "
                f"{ceiling['iowait']:.0f}"
            )
        other = max(cpu.get("other", 0.0), ceiling.get("other", 0.0))
        if other > SHARED_WARNING:
            out.print(
                f"  [yellow]other processes used up to {other:.0f} % of a core: the machine was "
                "shared, these numbers are noisy; run again on a quiet machine[/]"
            )
        for error in r.errors:
            out.print(f"  [red]{error}[/]")
    out.print(
        f"{meta['cpus']} CPUs, Python {meta['python']}, RabbitMQ {meta.get('rabbitmq', '?')}, "
        f"{meta['queue_type']} queues"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark submit -> delivered (3 recipients) against the raw broker ceiling."
    )
    parser.add_argument(
        "--sizes", default="10k,400k", help="package sizes, comma-separated (default 10k,400k)"
    )
    parser.add_argument(
        "--count", type=int, help="packages per size (default 2000 at 10k, 600 at 400k)"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        help="stop submitting a size after this long, even before --count (30; quick 3)",
    )
    parser.add_argument(
        "--ceiling-count", type=int, help="broker messages per size (default: as --count)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (16)")
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run (< 20 s)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--poll-ms", type=float, default=5.0, help="delivery poll interval (5)")
    parser.add_argument(
        "--settle", type=float, help="pause before each measurement, seconds (1; quick 0.2)"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for delivery")
    parser.add_argument("--hubs", type=int, default=1, help="hub processes; POSTs alternate (1)")
    parser.add_argument("--port", type=int, help="port of the (first) hub (default: any free)")
    parser.add_argument(
        "--hub-command",
        metavar="CMD",
        help="command that starts a hub, before 'serve --host --port' (default: lienthong)",
    )
    parser.add_argument(
        "--profile-hub",
        type=Path,
        metavar="DIR",
        help="sample the (first) hub with py-spy during each measured run; stacks into DIR",
    )
    args = parser.parse_args(argv)
    args.sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    if args.settle is None:
        args.settle = 0.2 if args.quick else 1.0
    if args.max_seconds is None:
        args.max_seconds = 3.0 if args.quick else 30.0
    if min(args.concurrency, args.hubs, args.count or 1) < 1 or not args.sizes:
        parser.error("--count, --concurrency, --hubs and --sizes must be positive")
    try:
        results, meta = asyncio.run(run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.print("[yellow]interrupted; everything the bench made was removed[/]")
        return 130
    if args.json:
        print(json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=2))
    else:
        print_table(results, meta)
    ok = all(r.delivered == r.packages and not r.failed for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
