"""``lienthong registry import|list``: the agency registry."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from exchange.cli.common import settings_of, with_stores

__all__ = ["add_registry_commands"]


def cmd_registry_import(args: argparse.Namespace) -> int:
    from exchange.registry import RegistryFileError, read_registry_file

    settings = settings_of(args)
    try:
        found = read_registry_file(args.file)
    except (RegistryFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    given = None if args.replace else found.given
    inserted, updated = asyncio.run(
        with_stores(settings, lambda s: s.registry.upsert(found.agencies, given))
    )
    print(
        f"imported {len(found.agencies)} agencies from {args.file}: {inserted} new, "
        f"{updated} updated" + (" (replaced whole)" if args.replace else "")
    )
    return 0


def cmd_registry_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    settings = settings_of(args)
    rows = asyncio.run(with_stores(settings, lambda s: s.registry.list(limit=args.limit)))
    if args.json:
        print(json.dumps([a.to_json() for a in rows], ensure_ascii=False, indent=2))
        return 0
    table = Table("code", "name", "level", "parent", "valid", "routing key")
    for a in rows:
        valid = f"{a.valid_from or '…'} → {a.valid_to or '…'}"
        if a.successor:
            valid += f" (→ {a.successor})"
        table.add_row(a.code, a.name, a.level, a.parent or "", valid, a.routing_key)
    Console().print(table)
    return 0


def add_registry_commands(sub: argparse._SubParsersAction) -> None:
    """registry import, registry list."""
    reg = sub.add_parser("registry", help="the agency registry").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = reg.add_parser(
        "import",
        help="insert or update agencies from CSV or JSON",
        description="Columns: code, name, parent, level (central|province|district|commune), "
        "valid_from, valid_to (YYYY-MM-DD), successor, verify_policy. Only code and name are "
        "required; parent and level default to what the code says. For agencies already "
        "registered, only the columns the file has are written; the others keep their values "
        "(--replace writes every column, absent ones as empty). All or nothing.",
    )
    p.add_argument("file", help="a .csv (header row) or .json file")
    p.add_argument(
        "--replace",
        action="store_true",
        help="overwrite existing entries whole: columns the file lacks become empty",
    )
    p.set_defaults(func=cmd_registry_import)
    p = reg.add_parser("list", help="show the registry")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_registry_list)
