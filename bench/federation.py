"""Benchmark: cross-hub packages/s and latency, beside the same-hub path, in one run.

    .venv/bin/python -m bench.federation                 # 200 packages each way
    .venv/bin/python -m bench.federation --count 50      # quick
    .venv/bin/python -m bench.federation --json

Two federated hubs (H49 and H41, :mod:`exchange.federation.sandbox`: own schemas, own virtual
hosts on the local RabbitMQ, mutual TLS) run in this process. A commune of H49 sends distinct
10 KB packages, ``--concurrency`` requests in flight: first to a district served by H49 itself
(the same-hub path), then to a district served by H41 (hand-over, claim check fetched over
mutual TLS, digest checked, stored and delivered there). Latency is from the start of the POST
at H49 to the ``delivered_at`` of the copy in the recipient's inbox (the receiving hub's
commit; one clock, one machine). Everything is removed at the end.
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
import logging
import math
import os
import secrets
import tempfile
import time

import aiohttp

from adapters.client import HubClient
from exchange.auth import issue_credentials
from exchange.config import load_settings
from exchange.federation.sandbox import HubSpec, RunningHub, federated_hubs
from exchange.registry import Agency
from schemas import build_document

COMMUNE = Agency("000.05.10.H49", "UBND phường Hồng Gai", "000.00.10.H49", "commune")
LOCAL = Agency("000.00.10.H49", "UBND thành phố Hạ Long", None, "district")
REMOTE = Agency("000.00.10.H41", "UBND thành phố Nha Trang", None, "district")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))]


def packages(recipient: str, count: int, size: int) -> list[bytes]:
    tag = secrets.token_hex(4)
    return [
        build_document(
            sender=COMMUNE.code,
            recipients=[recipient],
            code_number=f"{tag}-{i}",
            code_notation="BENCH",
            subject="Đo liên thông",
            attachments=[("a.bin", "application/octet-stream", os.urandom(size))],
        )
        for i in range(count)
    ]


async def run_path(
    client: HubClient, receiving: RunningHub, recipient: str, count: int, concurrency: int
) -> dict:
    """Send ``count`` packages to ``recipient``; packages/s and latency to its inbox."""
    bodies = packages(recipient, count, 10 * 1024)
    started: dict[str, float] = {}
    queue = list(bodies)

    async def worker() -> None:
        while queue:
            body = queue.pop()
            t0 = time.time()
            sent = await client.submit(body)
            started[sent["digest"]] = t0

    t_start = time.time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    digests = [bytes.fromhex(d) for d in started]
    deadline = time.monotonic() + 300
    while True:
        rows = await receiving.hub.pool.fetch(
            "SELECT p.digest, d.delivered_at FROM packages p JOIN deliveries d "
            "ON d.package_id = p.id WHERE p.digest = ANY($1::bytea[]) AND d.recipient = $2 "
            "AND d.delivered_at IS NOT NULL",
            digests,
            recipient,
        )
        if len(rows) == count or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    latencies = [(r["delivered_at"].timestamp() - started[r["digest"].hex()]) * 1000 for r in rows]
    last = max(r["delivered_at"].timestamp() for r in rows)
    return {
        "packages": count,
        "delivered": len(rows),
        "packages_per_s": round(len(rows) / (last - t_start), 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
    }


async def main(args: argparse.Namespace) -> dict:
    base = load_settings().replace(cpu_workers=1, federation_witness_interval_seconds=3600)
    specs = [
        HubSpec("H49", ("H49.#",), (COMMUNE, LOCAL)),
        HubSpec("H41", ("H41.#",), (REMOTE,)),
    ]
    tag = f"lt-bench-{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory(prefix="lienthong-bench-fed-") as tmp:
        async with federated_hubs(base, tag, specs, [("H49", "H41")], Path(tmp)) as hubs:
            p, q = hubs["H49"], hubs["H41"]
            creds = await issue_credentials(p.hub.credentials, COMMUNE.code)
            connector = aiohttp.TCPConnector(ssl=False, limit=args.concurrency * 2)
            async with aiohttp.ClientSession(connector=connector) as session:
                client = HubClient(p.url, creds.client_id, creds.client_secret, session=session)
                await run_path(client, p, LOCAL.code, 10, args.concurrency)  # warm-up
                same = await run_path(client, p, LOCAL.code, args.count, args.concurrency)
                cross = await run_path(client, q, REMOTE.code, args.count, args.concurrency)
    return {"same_hub": same, "cross_hub": cross, "concurrency": args.concurrency}


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    result = asyncio.run(main(args))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{'path':<12}{'packages/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'delivered':>12}")
    for name in ("same_hub", "cross_hub"):
        r = result[name]
        print(
            f"{name:<12}{r['packages_per_s']:>12}{r['p50_ms']:>10}{r['p99_ms']:>10}"
            f"{r['delivered']:>8}/{r['packages']}"
        )


if __name__ == "__main__":
    cli()
