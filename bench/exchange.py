"""Benchmark: submit -> delivered into 3 inboxes, beside the raw RabbitMQ ceiling, in one run.

    .venv/bin/python -m bench.exchange              # defaults (at most about 3 minutes)
    .venv/bin/python -m bench.exchange --quick      # smoke run (< 20 s)
    .venv/bin/python bench/exchange.py --sizes 400k --count 300 --json

The hub runs as separate ``lienthong serve`` processes with their own schema, broker prefix and
blob folder; all of them are removed at the end, also on failure. See ``bench/README.md``.

This module builds the packages, measures the broker ceiling and runs it all; the hub side
(processes, delivery watcher, closed and open loop) is in ``bench/exchange_hub.py``, CPU and
memory accounting in ``bench/exchange_cpu.py``, the results, targets and table in
``bench/exchange_report.py``.
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
import os
import platform
import secrets
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import asdict

import aio_pika
import aiohttp

from adapters.client import HubClient
from bench.exchange_cpu import ACCOUNTED, CpuSample
from bench.exchange_hub import (
    DeliveryWatcher,
    HalfLoad,
    HubProcess,
    HubRun,
    hub_pids,
    measure_half_load,
    measure_hub,
)
from bench.exchange_report import (
    STAGES,
    TARGETS,
    Result,
    check_targets,
    console,
    percentile,
    print_table,
)
from exchange.auth import issue_credentials
from exchange.broker import Broker
from exchange.config import Settings, load_settings
from exchange.registry import Agency
from exchange.store import PostgresCredentials, PostgresRegistry
from exchange.store import database as db
from schemas import build_document

SENDER = Agency("000.00.00.G01", "Bộ Nội vụ (bench)", None, "central")
RECIPIENTS = (
    Agency("000.00.00.H49", "UBND tỉnh Quảng Ninh (bench)", None, "province"),
    Agency("000.00.10.H49", "UBND thành phố Hạ Long (bench)", "000.00.00.H49", "district"),
    Agency("000.05.10.H49", "UBND phường Hồng Gai (bench)", "000.00.10.H49", "commune"),
)
DEFAULT_COUNTS = {10 * 1024: 2000, 400 * 1024: 600}
QUICK_COUNTS = {10 * 1024: 200, 400 * 1024: 80}
HALF_LOAD = {"seconds": 8.0, "min_count": 100}  # the open-loop phase: about 8 s, >= 100 packages
QUICK_HALF_LOAD = {"seconds": 2.0, "min_count": 30}
METHOD = (
    "delivery observed by polling `deliveries` (inbox_seq cursor, all 3 recipients in one "
    "indexed query) through asyncpg every {poll_ms:g} ms; latency = POST start -> first poll "
    "that sees the package delivered to all 3 recipients (resolution ~{poll_ms:g} ms); "
    "pkg/s = delivered packages / (first POST start -> last delivery seen)"
)
CPU_METHOD = (
    "CPU seconds from /proc between the first POST and the last delivery of the closed-loop "
    "run, by group: hub = the serve processes, hub workers = their descendants (the parsing "
    "pool), postgres and rabbitmq = every process of that name on the machine, bench = this "
    "process; CPU ms/pkg all = (" + " + ".join(ACCOUNTED) + ") / delivered packages; other = "
    "machine busy time none of these account for, shown, not counted"
)
MEMORY_METHOD = (
    "VmRSS summed over the hub processes and all their descendants, sampled every "
    "{rss_ms:g} ms in a thread during the closed-loop run; baseline = just before it (after "
    "the warm-up, which runs at the same concurrency); mem ×size = (peak - baseline) / "
    "(concurrency × package bytes)"
)
HALF_LOAD_METHOD = (
    "after the closed-loop run of a size: open loop, {arrivals} arrivals at half its pkg/s, "
    "each POST its own task (at most {cap} in flight; arrivals beyond wait and are counted), "
    "about {seconds:g} s and at least {min_count} packages; latency = POST start -> seen "
    "delivered to all 3, as above"
)
CLAIM_CHECK = (
    "the hub stores each body once (fsynced file) and publishes 3 references of ~100 B, one per "
    "recipient (claim check); the ceiling publishes the full body once per message into one "
    "durable quorum queue, publish-only, with confirms"
)


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
            hubs.append(
                HubProcess(
                    settings.replace(port=port), workdir, args.hub_command, i, args.processes
                )
            )
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
        "hub_processes": args.hubs * args.processes,
        "hubs": args.hubs,
        "processes_per_hub": args.processes,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "method": METHOD.format(poll_ms=args.poll_ms),
        "claim_check": CLAIM_CHECK,
        "stages": STAGES,
        "cpu": CPU_METHOD,
        "memory": MEMORY_METHOD.format(rss_ms=args.rss_ms),
        "half_load": HALF_LOAD_METHOD.format(**vars(args.half_load))
        if args.half_load
        else "skipped (--no-half-load)",
        "targets": {target.name: target.label for target in TARGETS},
    }
    hubs: list[HubProcess] = []
    results: list[Result] = []
    try:
        client_id, client_secret = await register(settings)
        await start_hubs(args, settings, workdir, hubs)
        # room for every POST the open loop may have in flight: no queueing in the client
        limit = max(100, args.concurrency * 2, args.half_cap + 16)
        connector = aiohttp.TCPConnector(limit=limit)
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
                    result = await measure_size(args, settings, hubs, clients, watcher, index, size)
                    check_targets(result)
                    results.append(result)
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
    """Ceiling first, then the hub (closed loop, then half load in open loop), for one size."""
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
    cpu0 = CpuSample.take(hub_pids(hubs))
    await broker_ceiling(settings, result, ceiling_count)
    result.ceiling_cpu_pct = CpuSample.take(hub_pids(hubs)).usage_since(cpu0)

    console.print(f"{label}: hub, {count} packages x {len(RECIPIENTS)} recipients ...")
    await asyncio.sleep(args.settle)
    profile = None
    if args.profile_hub:
        args.profile_hub.mkdir(parents=True, exist_ok=True)
        profile = args.profile_hub / f"hub-{label.replace(' ', '').lower()}.txt"
    hub_run = HubRun(args.timeout, args.max_seconds, profile, args.rss_ms / 1000)
    await measure_hub(clients, hubs, watcher, result, packages, warmup, hub_run)
    del packages, warmup  # the open loop's packages take their place in memory
    if result.ceiling_msg_s:
        result.ratio_pct = 100 * result.hub_pkg_s / result.ceiling_msg_s

    plan: HalfLoad | None = args.half_load
    if plan and result.hub_pkg_s:
        rate = result.hub_pkg_s / 2
        half_count = plan.packages_for(rate)
        console.print(
            f"{label}: half load, {half_count} packages, {plan.arrivals} arrivals at "
            f"{rate:.1f}/s (~{half_count / rate:.0f} s) ..."
        )
        half = build_packages(size, half_count, 1_000_000 * (index + 1) + 500_000)
        await asyncio.sleep(args.settle)
        await measure_half_load(clients, watcher, result, half, plan, args.timeout)
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
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="each hub as `serve --processes N` (one port shared by N processes) (1)",
    )
    parser.add_argument("--port", type=int, help="port of the (first) hub (default: any free)")
    parser.add_argument(
        "--hub-command",
        metavar="CMD",
        help="command that starts a hub, before 'serve --host --port' (default: lienthong)",
    )
    parser.add_argument(
        "--no-half-load",
        action="store_true",
        help="skip the open-loop phase at half the measured pkg/s after each size",
    )
    parser.add_argument(
        "--half-seconds",
        type=float,
        help="length of the half-load phase, seconds (8, at least 100 packages; quick 2, 30)",
    )
    parser.add_argument(
        "--half-count", type=int, help="packages in the half-load phase (default: by seconds)"
    )
    parser.add_argument(
        "--half-cap", type=int, default=256, help="most POSTs in flight at half load (256)"
    )
    parser.add_argument(
        "--arrivals",
        choices=("poisson", "even"),
        default="poisson",
        help="half-load arrivals: exponential gaps (poisson, default) or evenly spaced",
    )
    parser.add_argument(
        "--rss-ms", type=float, default=20.0, help="hub memory sample interval, ms (20)"
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
    if min(args.concurrency, args.hubs, args.count or 1, args.half_cap) < 1 or not args.sizes:
        parser.error("--count, --concurrency, --hubs, --half-cap and --sizes must be positive")
    if args.rss_ms <= 0 or (args.half_count or 1) < 1:
        parser.error("--rss-ms and --half-count must be positive")
    args.half_load = None
    if not args.no_half_load:
        defaults = QUICK_HALF_LOAD if args.quick else HALF_LOAD
        args.half_load = HalfLoad(
            seconds=args.half_seconds or defaults["seconds"],
            min_count=int(defaults["min_count"]),
            cap=args.half_cap,
            arrivals=args.arrivals,
            count=args.half_count,
        )
    try:
        results, meta = asyncio.run(run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.print("[yellow]interrupted; everything the bench made was removed[/]")
        return 130
    if args.json:
        print(json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=2))
    else:
        print_table(results, meta)
    ok = all(
        r.delivered == r.packages and not r.failed and r.half_delivered == r.half_sent
        for r in results
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
