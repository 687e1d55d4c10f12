"""Benchmark: push beside pull, in one run against one hub.

    .venv/bin/python -m bench.push              # 300 documents (about a minute)
    .venv/bin/python -m bench.push --quick      # 60 documents
    .venv/bin/python bench/push.py --count 500 --json

Each document goes to three agencies: the province takes it by push (a local aiohttp receiver
that answers 204 at once), the district and the commune pull (each polls its inbox, fetches
and acks every item; an empty inbox is asked again after ``--poll-ms``). Latency is from the
start of the POST to the receiver's request (push) or to the fetched bytes (pull);
packages/s is documents taken / (first POST -> last taken). The hub runs as its own
``lienthong serve`` process; everything it creates is removed at the end.
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
import json
import secrets
import shutil
import tempfile
import time

import aiohttp
from aiohttp import web
from rich.table import Table

from adapters.client import HubClient
from bench.exchange import (
    RECIPIENTS,
    SENDER,
    HubProcess,
    cleanup,
    console,
    free_port,
    percentile,
    register,
)
from exchange.auth import issue_credentials
from exchange.config import load_settings
from exchange.push import PushAdmin
from exchange.sealing import open_secret_box
from exchange.store import PostgresCredentials
from exchange.store import database as db
from exchange.store.push import PostgresPush
from schemas import build_document

PUSHED, *PULLING = RECIPIENTS


class Arrivals:
    """When each package reached each recipient (``time.perf_counter()``)."""

    def __init__(self) -> None:
        self.at: dict[str, dict[str, float]] = {}

    def note(self, organ_id: str, package_id: str) -> None:
        self.at.setdefault(organ_id, {}).setdefault(package_id, time.perf_counter())


async def receiver(arrivals: Arrivals) -> tuple[web.AppRunner, str]:
    """The pushed agency's system: notes the package and answers 204 at once."""

    async def take(request: web.Request) -> web.Response:
        await request.read()
        arrivals.note(PUSHED.code, request.headers["Lienthong-Package-Id"])
        return web.Response(status=204)

    app = web.Application(client_max_size=64 * 1024**2)
    app.router.add_post("/hook", take)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/hook"


async def puller(client: HubClient, organ_id: str, arrivals: Arrivals, want: int, poll: float):
    """Poll the inbox, fetch and ack each item, until ``want`` packages were taken."""
    cursor = None
    while len(arrivals.at.get(organ_id, {})) < want:
        page = await client.inbox(after=cursor, limit=100)
        for item in page["items"]:
            await client.fetch(item["id"])
            arrivals.note(organ_id, item["id"])
            await client.ack(item["id"])
        cursor = page["next"] or cursor
        if not page["items"]:
            await asyncio.sleep(poll)


async def run(args: argparse.Namespace) -> dict:
    tag = secrets.token_hex(4)
    workdir = Path(tempfile.mkdtemp(prefix=f"lienthong-bench-push-{tag}-"))
    settings = load_settings().replace(
        database_schema=f"bench_{tag}",
        broker_prefix=f"bench.{tag}",
        blob_dir=str(workdir / "blobs"),
        host="127.0.0.1",
        port=free_port(),
    )
    hubs: list[HubProcess] = []
    arrivals = Arrivals()
    runner, url = await receiver(arrivals)
    try:
        client_id, client_secret = await register(settings)
        pool = await db.connect(settings, min_size=1, max_size=2)
        try:
            await PushAdmin(PostgresPush(pool), open_secret_box(settings)).switch_on(
                PUSHED.code, url
            )
            pulling = {a.code: await issue_credentials(PostgresCredentials(pool), a.code)
                       for a in PULLING}  # fmt: skip
        finally:
            await pool.close()
        hubs.append(HubProcess(settings, workdir))
        hubs[0].start()
        packages = [
            build_document(
                sender=SENDER.code,
                recipients=[a.code for a in RECIPIENTS],
                code_number=f"{n}",
                code_notation=f"BENCH-PUSH-{tag}",
                subject=f"Bench push {n}",
                attachments=[("a.bin", "application/octet-stream", secrets.token_bytes(args.size))],
            )
            for n in range(args.count)
        ]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
            await hubs[0].wait_healthy(session)
            await asyncio.sleep(2.0)  # queues declared and consumed
            sender = HubClient(hubs[0].url, client_id, client_secret, session=session)
            clients = {
                code: HubClient(hubs[0].url, c.client_id, c.client_secret, session=session)
                for code, c in pulling.items()
            }
            for client in (sender, *clients.values()):
                await client.token()
            started: dict[str, float] = {}
            queue = list(packages)

            async def submit() -> None:
                while queue:
                    package = queue.pop()
                    t0 = time.perf_counter()
                    started[(await sender.submit(package))["id"]] = t0

            pullers = [
                asyncio.create_task(puller(c, code, arrivals, args.count, args.poll_ms / 1000))
                for code, c in clients.items()
            ]
            await asyncio.gather(*(submit() for _ in range(args.concurrency)))
            deadline = time.monotonic() + args.timeout
            while len(arrivals.at.get(PUSHED.code, {})) < args.count:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            await asyncio.wait_for(asyncio.gather(*pullers), args.timeout)
        return summarise(args, started, arrivals)
    finally:
        await runner.cleanup()
        await cleanup(settings, hubs)
        shutil.rmtree(workdir, ignore_errors=True)


def summarise(args: argparse.Namespace, started: dict[str, float], arrivals: Arrivals) -> dict:
    first = min(started.values())
    rows = {}
    for organ_id, how in ((PUSHED.code, "push"), *((a.code, "pull") for a in PULLING)):
        got = arrivals.at.get(organ_id, {})
        latencies = [(got[p] - started[p]) * 1000 for p in started if p in got]
        rows[organ_id] = {
            "path": how,
            "taken": len(latencies),
            "packages_per_s": round(len(latencies) / (max(got.values()) - first), 1)
            if got
            else 0.0,
            "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
        }
    return {
        "count": args.count,
        "size_bytes": args.size,
        "concurrency": args.concurrency,
        "poll_ms": args.poll_ms,
        "recipients": rows,
    }


def print_table(result: dict) -> None:
    table = Table(
        "recipient", "path", "taken", "packages/s", "p50 ms", "p99 ms",
        title=f"{result['count']} documents of {result['size_bytes']} B attachment, "
        f"{result['concurrency']} in flight; pull polls every {result['poll_ms']} ms when empty",
    )  # fmt: skip
    for organ_id, row in result["recipients"].items():
        table.add_row(
            organ_id, row["path"], str(row["taken"]), f"{row['packages_per_s']:.1f}",
            f"{row['p50_ms']:.0f}", f"{row['p99_ms']:.0f}",
        )  # fmt: skip
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--size", type=int, default=10 * 1024, help="attachment bytes")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--poll-ms", type=float, default=50.0)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--quick", action="store_true", help="60 documents")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.count = 60
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
