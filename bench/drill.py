"""Fault drill: the broker, the database and the hub killed repeatedly under load; then count.

    sudo .venv/bin/python -m bench.drill --minutes 3

Starts `lienthong serve` (its own schema and broker prefix), keeps submitting packages to three
recipients from several clients, and every few seconds does one of: restart RabbitMQ
(``rabbitmqctl stop_app``/``start_app``), restart PostgreSQL (``pg_ctlcluster ... restart``),
SIGKILL the hub and start it again. Submissions that get an answer other than 202/200 are
retried by the clients, as a DMS would. At the end it waits for the backlog and checks, from the
database: every package answered 202 has exactly one delivery per recipient, each delivered
exactly once ('delivered' recorded once), nothing is left pending, and the ledger is consistent
(`lienthong audit check`). Prints a table; exit 1 if anything was lost or doubled.

It restarts the machine's real RabbitMQ and PostgreSQL: run it on a test machine only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg

from adapters.client import HubClient, HubClientError
from exchange.auth import issue_credentials
from exchange.config import load_settings
from exchange.registry import Agency
from exchange.store import PostgresCredentials, PostgresRegistry
from exchange.store import database as db
from schemas import build_document

SENDER = Agency("000.00.00.G09", "Bộ Giáo dục và Đào tạo", None, "central")
RECIPIENTS = [
    Agency("000.00.00.H49", "UBND tỉnh Quảng Ninh", None, "province"),
    Agency("000.00.10.H49", "UBND thành phố Hạ Long", "000.00.00.H49", "district"),
    Agency("000.05.10.H49", "UBND phường Hồng Gai", "000.00.10.H49", "commune"),
]


def run(*command: str) -> None:
    subprocess.run(command, check=False, capture_output=True, timeout=120)


class Hub:
    """`lienthong serve` as a child process that can be killed and started again."""

    def __init__(self, env: dict, port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "exchange.cli", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=out,
            )

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)


async def submitter(url: str, creds, accepted: dict, stop: asyncio.Event, n: int) -> None:
    async with aiohttp.ClientSession() as session:
        client = HubClient(url, creds.client_id, creds.client_secret, session=session)
        number = 0
        while not stop.is_set():
            number += 1
            package = build_document(
                sender=SENDER.code,
                recipients=[r.code for r in RECIPIENTS],
                code_number=f"{n}-{number}-{secrets.token_hex(3)}",
                code_notation="DRILL",
                subject="Fault drill",
            )
            for _ in range(200):  # a DMS retries until the hub answers
                try:
                    answer = await client.submit(package)
                    accepted[answer["id"]] = answer["digest"]
                    break
                except (TimeoutError, HubClientError, aiohttp.ClientError, OSError):
                    await asyncio.sleep(0.5)


async def ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{url}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError("the hub did not become ready")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--every", type=float, default=8.0, help="seconds between faults")
    parser.add_argument(
        "--faults", default="broker,database,hub", help="which faults to pick from, comma-separated"
    )
    args = parser.parse_args()

    tag = secrets.token_hex(4)
    settings = load_settings().replace(
        database_schema=f"drill_{tag}", broker_prefix=f"drill.{tag}", blob_dir=f"var/drill-{tag}"
    )
    env = dict(
        os.environ,
        LIENTHONG_DATABASE_SCHEMA=settings.database_schema,
        LIENTHONG_BROKER_PREFIX=settings.broker_prefix,
        LIENTHONG_BLOB_DIR=settings.blob_dir,
        LIENTHONG_REDELIVER_AFTER_SECONDS="20",
        LIENTHONG_RECONCILE_INTERVAL_SECONDS="5",
    )
    await db.create_database(settings)
    await db.migrate(settings)
    pool = await db.connect(settings, min_size=1, max_size=2)
    await PostgresRegistry(pool).upsert([SENDER, *RECIPIENTS])
    creds = await issue_credentials(PostgresCredentials(pool), SENDER.code)
    await pool.close()

    port = 18000 + random.randrange(1000)
    url = f"http://127.0.0.1:{port}"
    Path("var").mkdir(exist_ok=True)
    hub = Hub(env, port, Path(f"var/drill-{tag}.log"))
    hub.start()
    await ready(url)
    accepted: dict[str, str] = {}
    stop = asyncio.Event()
    clients = [
        asyncio.create_task(submitter(url, creds, accepted, stop, n)) for n in range(args.clients)
    ]
    faults: dict[str, int] = dict.fromkeys(args.faults.split(","), 0)
    versions = sorted(os.listdir("/etc/postgresql"))[-1]
    deadline = time.monotonic() + args.minutes * 60
    while time.monotonic() < deadline:
        await asyncio.sleep(args.every)
        fault = random.choice(list(faults))
        faults[fault] += 1
        print(f"{time.strftime('%H:%M:%S')} {fault} down ({len(accepted)} accepted)", flush=True)
        if fault == "broker":
            await asyncio.to_thread(run, "rabbitmqctl", "stop_app")
            await asyncio.sleep(3)
            await asyncio.to_thread(run, "rabbitmqctl", "start_app")
        elif fault == "database":
            await asyncio.to_thread(
                run, "pg_ctlcluster", "--skip-systemctl-redirect", versions, "main", "restart"
            )
        else:
            hub.kill()
            await asyncio.sleep(1)
            hub.start()
    stop.set()
    await asyncio.gather(*clients)
    await ready(url)
    counts = await settle(settings, set(accepted))
    hub.stop()
    audit = subprocess.run(
        [sys.executable, "-m", "exchange.cli", "audit", "check"],
        env=env,
        capture_output=True,
        text=True,
    )
    rows = [
        ("faults", ", ".join(f"{k} {v}" for k, v in faults.items())),
        ("packages accepted (202/200)", str(len(accepted))),
        ("deliveries expected", str(len(accepted) * len(RECIPIENTS))),
        ("deliveries delivered", str(counts["delivered"])),
        ("still pending", str(counts["pending"])),
        ("accepted but unknown to the database", str(counts["missing"])),
        ("delivered more than once", str(counts["doubled"])),
        ("audit check", audit.stdout.strip().splitlines()[-1] if audit.stdout else audit.stderr),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    bad = counts["pending"] or counts["missing"] or counts["doubled"] or audit.returncode
    print("LOST OR DOUBLED" if bad else "nothing lost, nothing doubled")
    return 1 if bad else 0


async def settle(settings, accepted: set[str], timeout: float = 180) -> dict[str, int]:
    """Wait for the backlog, then count deliveries of the accepted packages."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(f'SET search_path TO "{settings.database_schema}"')
        deadline = time.monotonic() + timeout
        while True:
            pending = await conn.fetchval("SELECT count(*) FROM deliveries WHERE state = 'pending'")
            if not pending or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        ids = list(accepted)
        known = await conn.fetchval("SELECT count(*) FROM packages WHERE id = ANY($1::uuid[])", ids)
        delivered = await conn.fetchval(
            "SELECT count(*) FROM deliveries WHERE package_id = ANY($1::uuid[]) "
            "AND state <> 'pending'",
            ids,
        )
        doubled = await conn.fetchval(
            "SELECT count(*) FROM (SELECT package_id, organ_id FROM events "
            "WHERE event = 'delivered' GROUP BY 1, 2 HAVING count(*) > 1) d"
        )
        return {
            "delivered": delivered,
            "pending": pending,
            "missing": len(ids) - known,
            "doubled": doubled,
        }
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
