"""``lienthong registry import|list|show|structure|reorganise``: the registry and its history."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import hashlib
import json
import sys
from pathlib import Path

from exchange.cli.common import settings_of, with_stores

__all__ = ["add_registry_commands"]


def _day(raw: str) -> dt.date:
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a date (YYYY-MM-DD)") from None


def _who(args: argparse.Namespace) -> str:
    return args.by or getpass.getuser()


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
        with_stores(
            settings,
            lambda s: s.registry.upsert(
                found.agencies,
                given,
                effective=args.effective,
                by=_who(args),
                reason=f"registry import {Path(args.file).name}",
            ),
        )
    )
    unchanged = len(found.agencies) - inserted - updated
    print(
        f"imported {len(found.agencies)} agencies from {args.file}: {inserted} new, "
        f"{updated} updated, {unchanged} unchanged" + (" (replaced whole)" if args.replace else "")
    )
    return 0


def cmd_registry_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    settings = settings_of(args)
    rows = asyncio.run(
        with_stores(settings, lambda s: s.registry.list(limit=args.limit, at=args.at))
    )
    if args.json:
        print(json.dumps([a.to_json() for a in rows], ensure_ascii=False, indent=2))
        return 0
    table = Table("code", "name", "level", "parent", "valid", "routing key")
    for a in rows:
        valid = f"{a.valid_from or '…'} → {a.valid_to or '…'}"
        if a.successors:
            valid += f" (→ {', '.join(a.successors)})"
        table.add_row(a.code, a.name, a.level, a.parent or "", valid, a.routing_key)
    Console().print(table)
    return 0


def cmd_registry_show(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from exchange.errors import HubError
    from exchange.history import agency_as_of
    from schemas import FormatError

    settings = settings_of(args)
    try:
        found = asyncio.run(
            with_stores(settings, lambda s: agency_as_of(s.registry, args.code, args.at))
        )
    except (HubError, FormatError) as exc:
        print(f"error: {exc.message} [{exc.code}]", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(found, ensure_ascii=False, indent=2))
        return 0
    a = found["agency"]
    state = "takes documents" if found["active"] else "takes no documents"
    console = Console()
    console.print(
        f"[bold]{a['code']}[/] {a['name']} — as of {found['at']}: {a['level']}, "
        f"parent {a['parent'] or '—'}, {state}"
    )
    if a["successors"]:
        console.print(f"successors: {', '.join(a['successors'])}")
    if found["successors_today"]:
        console.print(f"packages for it go today to: {', '.join(found['successors_today'])}")
    table = Table(
        "effective",
        "name",
        "level",
        "parent",
        "valid",
        "successors",
        "recorded by",
        title="versions",
    )
    for v in found["versions"]:
        valid = f"{v['valid_from'] or '…'} → {v['valid_to'] or '…'}"
        table.add_row(
            v["effective_from"],
            v["name"],
            v["level"],
            v["parent"] or "",
            valid,
            ", ".join(v["successors"]),
            f"{v['recorded_by']} {v['recorded_at'][:10]}",
        )
    console.print(table)
    return 0


def cmd_registry_structure(args: argparse.Namespace) -> int:
    """The tree of a day, for reports: per code its level, parent and province."""
    from collections import Counter

    from exchange.store.registry import today

    settings = settings_of(args)
    day = args.at or today()
    places = asyncio.run(with_stores(settings, lambda s: s.registry.structure_at(day)))
    if args.json:
        rows = {code: place.__dict__ for code, place in sorted(places.items())}
        print(json.dumps({"at": day.isoformat(), "codes": rows}, ensure_ascii=False, indent=2))
        return 0
    counts = Counter((place.province or "—", place.level) for place in places.values())
    print(f"structure as of {day.isoformat()}: {len(places)} codes")
    for province in sorted({p for p, _ in counts}):
        levels = ", ".join(f"{n} {lvl}" for (p, lvl), n in sorted(counts.items()) if p == province)
        print(f"{province}: {levels}")
    return 0


def cmd_registry_reorganise(args: argparse.Namespace) -> int:
    from exchange.mapping import read_mapping
    from exchange.reorganise import apply_reorganisation

    settings = settings_of(args)
    path = Path(args.file)
    try:
        rows, problems = read_mapping(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    reason = f"reorganisation {path.name} (sha256 {digest}…)"
    dry_run = args.dry_run or bool(problems)
    plan = asyncio.run(
        with_stores(
            settings,
            lambda s: apply_reorganisation(
                s.registry, rows, by=_who(args), reason=reason, dry_run=dry_run
            ),
        )
    )
    plan.problems[:0] = problems
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, **plan.to_json()}, ensure_ascii=False, indent=2))
    else:
        _print_plan(plan, path.name, args.dry_run)
    return 1 if plan.problems else 0


def _print_plan(plan, name: str, dry_run: bool) -> None:
    for line in plan.described:
        print(("would: " if dry_run else "") + line)
    for province, counts in sorted(plan.per_province.items()):
        name = f" ({plan.province_names[province]})" if province in plan.province_names else ""
        print(
            f"{province}{name}: " + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        )
    for note in plan.notes:
        print(f"note: {note}")
    for problem in plan.problems:
        print(f"conflict: {problem}", file=sys.stderr)
    if plan.problems:
        print(f"{name}: {len(plan.problems)} conflict(s); nothing was changed", file=sys.stderr)
    elif dry_run:
        print(
            f"{name}: {len(plan.versions)} new version(s) would be recorded, "
            f"{plan.unchanged} row(s) already applied (dry run: nothing was changed)"
        )
    else:
        print(
            f"{name}: {len(plan.versions)} new version(s) recorded, "
            f"{plan.unchanged} row(s) already applied"
        )


def _by_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--by", help="who makes the change, for the ledger (default: the OS user)")


def add_registry_commands(sub: argparse._SubParsersAction) -> None:
    """registry import, list, show, structure, reorganise."""
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
        "(--replace writes every column, absent ones as empty). Every change is a new version "
        "in effect from --effective (default today); a new code's first version too (default: "
        "since always). All or nothing.",
    )
    p.add_argument("file", help="a .csv (header row) or .json file")
    p.add_argument(
        "--replace",
        action="store_true",
        help="overwrite existing entries whole: columns the file lacks become empty",
    )
    p.add_argument("--effective", type=_day, help="the day the changes take effect (YYYY-MM-DD)")
    _by_option(p)
    p.set_defaults(func=cmd_registry_import)
    p = reg.add_parser("list", help="show the registry (as of a day)")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--at", type=_day, help="as of this day (YYYY-MM-DD; default today)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_registry_list)
    p = reg.add_parser("show", help="one agency as of a day, with every version")
    p.add_argument("code")
    p.add_argument("--at", type=_day, help="as of this day (YYYY-MM-DD; default today)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_registry_show)
    p = reg.add_parser(
        "structure",
        help="the tree of a day (level, parent, province of every code), for reports",
    )
    p.add_argument("--at", type=_day, help="as of this day (YYYY-MM-DD; default today)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_registry_structure)
    p = reg.add_parser(
        "reorganise",
        help="apply a reorganisation mapping (merge, split, rename, abolish)",
        description="Columns: old, new (codes separated by spaces or ';'), effective "
        "(YYYY-MM-DD), kind (merge|split|rename|abolish), parent (of the new codes from that "
        "day), name (rename), route (which new codes take packages still sent to the old "
        "one: 'all' or codes; default the first). Successors must be registered first. "
        "Every conflict is listed; with any, nothing changes. Applying twice is harmless.",
    )
    p.add_argument("file", help="a .csv (header row) or .json mapping")
    p.add_argument("--dry-run", action="store_true", help="show what would change; change nothing")
    p.add_argument("--json", action="store_true")
    _by_option(p)
    p.set_defaults(func=cmd_registry_reorganise)
