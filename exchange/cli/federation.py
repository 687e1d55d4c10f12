"""``lienthong federation peer add|list|remove``, ``federation status``, ``federation
directory pull``: this hub's peers, the state of each link, and the directory of home hubs."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from exchange.config import Settings
from exchange.errors import HubError
from exchange.store import database as db

__all__ = ["add_federation_commands"]


async def _with_federation(settings: Settings, work):
    """Run ``work(federation, registry)`` against the configured database and broker API."""
    from exchange.federation.peers import Peers
    from exchange.sealing import open_secret_box
    from exchange.store.federation import PostgresFederation
    from exchange.store.registry import PostgresRegistry

    if not settings.hub_id:
        raise HubError("federation.not_configured", "set hub_id (LIENTHONG_HUB_ID) first")
    await db.create_database(settings)
    await db.migrate(settings)
    pool = await db.connect(settings, min_size=1, max_size=2)
    try:
        store = PostgresFederation(pool)
        peers = Peers(settings, store, open_secret_box(settings))
        try:
            return await work(peers, store, PostgresRegistry(pool))
        finally:
            await peers.close()
    finally:
        await pool.close()


def _settings(args):
    from exchange.cli.common import settings_of

    return settings_of(args)


def cmd_peer_add(args: argparse.Namespace) -> int:
    cert = Path(args.cert).read_bytes()
    fingerprint = asyncio.run(
        _with_federation(
            _settings(args), lambda peers, *_: peers.add(args.hub_id, args.amqp, args.http, cert)
        )
    )
    print(f"peer {args.hub_id} added: upstream and policy set, certificate sha256 {fingerprint}")
    return 0


def cmd_peer_remove(args: argparse.Namespace) -> int:
    asyncio.run(_with_federation(_settings(args), lambda peers, *_: peers.remove(args.hub_id)))
    print(f"peer {args.hub_id} removed (its upstream too)")
    return 0


def cmd_peer_list(args: argparse.Namespace) -> int:
    rows = asyncio.run(_with_federation(_settings(args), lambda peers, *_: peers.listing()))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("hub", "API", "broker", "certificate sha256", "added")
    for r in rows:
        table.add_row(
            r["hub_id"], r["http_url"], r["amqp"], r["cert_sha256"][:16] + "…", r["added_at"][:19]
        )
    Console().print(table)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    rows = asyncio.run(_with_federation(_settings(args), lambda peers, *_: peers.status()))
    if args.json:
        print(json.dumps([r.to_json() for r in rows], indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table("peer", "link", "backlog", "last error", "last answer")
        for r in rows:
            table.add_row(
                r.hub_id, r.link, str(r.backlog), r.last_error or "", (r.last_seen_at or "")[:19]
            )
        Console().print(table)
    return 0 if all(r.link == "running" and not r.last_error for r in rows) else 2


def cmd_directory_pull(args: argparse.Namespace) -> int:
    from exchange.federation.directory import pull_directory

    settings = _settings(args)
    count = asyncio.run(
        _with_federation(
            settings,
            lambda peers, store, registry: pull_directory(
                settings.hub_id, peers, args.hub_id, registry, store
            ),
        )
    )
    print(f"imported {count} agencies served by other hubs from {args.hub_id}")
    return 0


def add_federation_commands(sub: argparse._SubParsersAction) -> None:
    """federation peer add|list|remove, federation status, federation directory pull."""
    fed = sub.add_parser("federation", help="peer hubs and their links").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    peer = fed.add_parser("peer", help="configure peer hubs").add_subparsers(
        dest="peer_action", required=True, metavar="ACTION"
    )
    p = peer.add_parser(
        "add",
        help="add (or update) a peer hub",
        description="Sets the peer's broker as an upstream of this hub's federated exchange "
        "(RabbitMQ management API) and pins its hub certificate for mutual TLS.",
    )
    p.add_argument("hub_id")
    p.add_argument("--amqp", required=True, help="the peer's broker, amqp://user:pass@host/vhost")
    p.add_argument("--http", required=True, help="the peer's API, https://host:port")
    p.add_argument("--cert", required=True, help="the peer's hub certificate (PEM or DER)")
    p.set_defaults(func=cmd_peer_add)
    p = peer.add_parser("list", help="the peers (broker passwords hidden)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_peer_list)
    p = peer.add_parser("remove", help="remove a peer and its upstream")
    p.add_argument("hub_id")
    p.set_defaults(func=cmd_peer_remove)
    p = fed.add_parser("status", help="each link: state, backlog, last error (exit 2 if unwell)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    directory = fed.add_parser("directory", help="home hubs of agencies").add_subparsers(
        dest="directory_action", required=True, metavar="ACTION"
    )
    p = directory.add_parser("pull", help="import the agencies a peer says other hubs serve")
    p.add_argument("hub_id")
    p.set_defaults(func=cmd_directory_pull)
