"""``lienthong deliveries list|retry``: push deliveries as operators see them."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from exchange.cli.common import settings_of, with_stores

__all__ = ["add_deliveries_commands"]


def _admin(settings, work):
    from exchange.push import PushAdmin
    from exchange.sealing import open_secret_box
    from exchange.store.push import PostgresPush

    box = open_secret_box(settings)
    return asyncio.run(with_stores(settings, lambda s: work(PushAdmin(PostgresPush(s.pool), box))))


def cmd_deliveries_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from schemas import normalise

    settings = settings_of(args)
    agency = normalise(args.agency) if args.agency else None
    items = _admin(settings, lambda admin: admin.list(args.state, agency, args.limit))
    if args.json:
        print(json.dumps(items, ensure_ascii=False))
        return 0
    table = Table("delivery id", "agency", "package", "state", "attempts", "next / done", "last")
    for item in items:
        when = item["next_attempt_at"] or item["acknowledged_at"] or ""
        last = item["last_error"] or (str(item["last_status"]) if item["last_status"] else "")
        table.add_row(
            item["id"],
            item["agency"],
            item["package_id"],
            item["state"],
            str(item["attempts"]),
            when[:19],
            last,
        )
    Console(width=200).print(table)
    print(f"{len(items)} deliveries")
    return 0


def cmd_deliveries_retry(args: argparse.Namespace) -> int:
    from schemas import normalise

    settings = settings_of(args)
    if bool(args.delivery_id) == bool(args.agency):
        print("error: give DELIVERY_ID or --agency ORGAN_ID", file=sys.stderr)
        return 1
    agency = normalise(args.agency) if args.agency else None
    retried = _admin(settings, lambda admin: admin.retry(args.delivery_id, agency))
    for push_id in retried:
        print(f"{push_id}: due again now")
    print(f"{len(retried)} deliveries will be attempted again")
    return 0


def add_deliveries_commands(sub: argparse._SubParsersAction) -> None:
    """deliveries list, retry."""
    from exchange.push import STATES

    dv = sub.add_parser("deliveries", help="push deliveries: list, retry").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = dv.add_parser("list", help="push deliveries, newest first")
    p.add_argument("--state", choices=STATES)
    p.add_argument("--agency", metavar="ORGAN_ID")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    p.set_defaults(func=cmd_deliveries_list)
    p = dv.add_parser(
        "retry",
        help="attempt a failed delivery again now (or every failed one of an agency)",
        description="A failed push becomes due at once, with a fresh push_ttl_seconds; a "
        "waiting one is brought forward. A running hub sends it within push_poll_seconds.",
    )
    p.add_argument("delivery_id", nargs="?", help="the delivery id (its webhook-id)")
    p.add_argument("--agency", metavar="ORGAN_ID", help="every failed delivery of this agency")
    p.set_defaults(func=cmd_deliveries_retry)
