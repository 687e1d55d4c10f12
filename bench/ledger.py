"""Ledger benchmark: appends/s, proof generation time against tree size, evidence bundle export.

    .venv/bin/python bench/ledger.py            # 10^4, 10^5, 10^6 leaves (about two minutes)
    .venv/bin/python bench/ledger.py --quick    # 10^3, 10^4 (seconds)

Appends are measured as the sequencer runs them in production (batches of 10,000 committed
leaves: leaf hashes, subtree hashes, COPY, position update), beside the ceiling of a bare
``COPY`` of the same number of 32-byte hashes into PostgreSQL in the same run. Proof times are
the mean over 200 random leaves, database round trip included; they should grow like log n.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from exchange.config import load_settings  # noqa: E402
from exchange.ledger import Ledger, tree_size  # noqa: E402
from exchange.store import database as db  # noqa: E402


async def fill(pool, total: int) -> None:
    """Committed, unsequenced events (synthetic leaves) up to ``total``."""
    have = await pool.fetchval("SELECT count(*) FROM events")
    if have >= total:
        return
    await pool.execute(
        """
        INSERT INTO events (event, organ_id, at, detail, digest, leaf)
        SELECT 'delivered', '000.00.00.H49', now(), '{}'::jsonb,
               sha256(int8send(g)), convert_to('{"bench":' || g || '}', 'UTF8')
        FROM generate_series($1::bigint, $2::bigint - 1) AS g
        """,
        have,
        total,
    )


async def sequence_all(ledger: Ledger) -> tuple[int, float]:
    start, done = time.perf_counter(), 0
    while n := await ledger.sequence():
        done += n
    return done, time.perf_counter() - start


async def copy_ceiling(pool, count: int) -> float:
    rows = [(i, secrets.token_bytes(32)) for i in range(count)]
    async with pool.acquire() as conn:
        await conn.execute("CREATE TEMP TABLE ceiling (idx bigint, hash bytea)")
        start = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("ceiling", records=rows, columns=["idx", "hash"])
        elapsed = time.perf_counter() - start
        await conn.execute("DROP TABLE ceiling")
    return count / elapsed


async def proof_times(ledger: Ledger, size: int, samples: int = 200) -> tuple[float, float]:
    rng = random.Random(size)
    inclusion = []
    for _ in range(samples):
        index = rng.randrange(size)
        start = time.perf_counter()
        await ledger.inclusion(index, size)
        inclusion.append(time.perf_counter() - start)
    consistency = []
    for _ in range(samples // 4):
        old = rng.randint(1, size - 1)
        start = time.perf_counter()
        await ledger.consistency(old, size)
        consistency.append(time.perf_counter() - start)
    return statistics.mean(inclusion) * 1000, statistics.mean(consistency) * 1000


async def bundle_export(settings) -> float:
    """Time GET /v1/packages/{id}/evidence for a document with 10 statuses."""
    import aiohttp

    from adapters.client import HubClient
    from exchange.auth import issue_credentials
    from exchange.http.serve import running_hub
    from exchange.registry import Agency
    from schemas import build_document, build_status

    sender, receiver = "000.00.00.G22", "000.00.00.H49"
    async with running_hub(settings.replace(port=0)) as (hub, url):
        await hub.registry.upsert(
            [Agency(sender, "VPCP", None, "central"), Agency(receiver, "QN", None, "province")],
        )
        clients = []
        for code in (sender, receiver):
            await hub.broker.ensure_agency(code)
            creds = await issue_credentials(hub.credentials, code)
            clients.append(HubClient(url, creds.client_id, creds.client_secret))
        a, b = clients
        sent = await a.submit(
            build_document(
                sender=sender,
                recipients=[receiver],
                code_number="1",
                code_notation="BENCH",
                subject="bench",
                attachments=[("a.pdf", "application/pdf", os.urandom(100_000))],
            )
        )
        for code in ("01", "03", "04", "05", "05", "05", "05", "05", "05", "06"):
            await b.submit(
                build_status(
                    sender=receiver,
                    response_for_organ_id=sender,
                    response_for_document_id=sent["document_id"],
                    status_code=code,
                )
            )
        headers = {"Authorization": f"Bearer {await a.token()}"}
        times = []
        async with aiohttp.ClientSession() as session:
            for _ in range(5):
                start = time.perf_counter()
                async with session.get(
                    f"{url}/v1/packages/{sent['id']}/evidence", headers=headers
                ) as r:
                    await r.read()
                    assert r.status == 200
                times.append(time.perf_counter() - start)
        for client in clients:
            await client.close()
    from exchange.broker import Broker

    broker = Broker(settings)
    await broker.connect()
    await broker.delete_topology([sender, receiver])
    await broker.close()
    return statistics.median(times) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = [1_000, 10_000] if args.quick else [10_000, 100_000, 1_000_000]
    tag = secrets.token_hex(3)
    base = load_settings()
    settings = base.replace(
        database_url=os.environ.get(
            "LIENTHONG_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/lienthong_bench"
        ),
        database_schema=f"bench_{tag}",
        broker_prefix=f"bench.{tag}",
        blob_dir=tempfile.mkdtemp(prefix="lienthong-bench-"),
    )
    await db.create_database(settings)
    await db.migrate(settings)
    pool = await db.connect(settings)
    console = Console()
    table = Table(
        "tree size",
        "appends/s (sequencer)",
        "bare COPY rows/s",
        "inclusion proof ms",
        "consistency proof ms",
        "proof hashes",
        title="lienthong ledger",
    )
    try:
        ledger = Ledger(pool, None, batch=10_000)
        for size in sizes:
            before = await tree_size(pool)
            await fill(pool, size)
            done, elapsed = await sequence_all(ledger)
            assert await tree_size(pool) == size
            ceiling = await copy_ceiling(pool, done)
            inc, con = await proof_times(ledger, size)
            path = await ledger.inclusion(size // 3, size)
            table.add_row(
                f"{size:,}",
                f"{done / elapsed:,.0f} ({size - before:,} new)",
                f"{ceiling:,.0f}",
                f"{inc:.2f}",
                f"{con:.2f}",
                str(len(path)),
            )
        console.print(table)
        export_ms = await bundle_export(settings)
        console.print(
            f"evidence bundle export, document with 10 statuses: {export_ms:.0f} ms "
            "(median of 5, head signing included)"
        )
    finally:
        await pool.close()
        await db.drop_schema(settings)


if __name__ == "__main__":
    asyncio.run(main())
