"""``lienthong serve``, ``lienthong demo`` and ``lienthong db``: running the hub."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from exchange.cli.common import settings_of
from exchange.config import Settings
from exchange.logs import setup_logging
from exchange.store import database as db

__all__ = ["add_hub_commands"]


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    setup_logging(settings.log_level)
    if args.processes > 1:
        _share_metrics(settings)
    from exchange.http.serve import serve_processes  # after the metrics folder is chosen

    serve_processes(settings, consume=not args.no_workers, workers=args.processes)
    return 0


def _share_metrics(settings: Settings) -> None:
    """Several processes: their counters go to files in one folder, summed at each scrape
    (set before prometheus_client is first imported, here or in a child)."""
    from exchange.observability import MULTIPROCESS_DIR

    if os.environ.get(MULTIPROCESS_DIR):
        return
    folder = Path(settings.blob_dir).resolve().parent / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):  # counters of an earlier run
        stale.unlink()
    os.environ[MULTIPROCESS_DIR] = str(folder)


def cmd_demo(args: argparse.Namespace) -> int:
    from exchange.demo import run_demo

    settings = settings_of(args)
    setup_logging("ERROR")  # the demo says in plain words what the warnings would
    return asyncio.run(
        run_demo(settings, keep_serving=args.keep_serving, push=args.push, federated=args.federated)
    )


def cmd_db(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def run() -> None:
        if args.action == "reset":
            await db.drop_schema(settings)
        await db.create_database(settings)
        await db.migrate(settings)

    asyncio.run(run())
    print(f"schema {settings.database_schema!r} is ready ({args.action})")
    return 0


def add_hub_commands(sub: argparse._SubParsersAction) -> None:
    """serve, demo, db."""
    p = sub.add_parser("serve", help="run the hub: HTTP API, outbox dispatcher and inbox workers")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8080)")
    p.add_argument(
        "--no-workers", action="store_true", help="serve the API only; consume no queues"
    )
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        help="hub processes sharing the port (default 1; one per core for throughput)",
    )
    p.add_argument("--tls-cert", type=Path, help="serve HTTPS (TLS 1.2+): certificate chain, PEM")
    p.add_argument("--tls-key", type=Path, help="the private key of --tls-cert, PEM")
    p.add_argument(
        "--tls-client-ca",
        type=Path,
        help="accept client certificates from this CA (PEM bundle); see agency client-cert",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "demo", help="start a hub and run a four-level exchange through its real API"
    )
    p.add_argument("--port", type=int, default=0, help="port for the demo hub (default: any)")
    p.add_argument("--keep-serving", action="store_true", help="keep the hub running afterwards")
    p.add_argument("--push", action="store_true", help="the commune takes its documents by push")
    p.add_argument(
        "--federated",
        action="store_true",
        help="three federated hubs (national, H49, H41), each with its own schema and vhost",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("db", help="database schema")
    p.add_argument("action", choices=["migrate", "reset"], help="reset drops every table first")
    p.set_defaults(func=cmd_db)
