"""``lienthong audit verify|check`` and ``lienthong hub certificate``: the auditor's and the
operator's view of the ledger and of the hub's keys.

Verdicts are printed in plain words. Library logs would only bury them (pyHanko logs every failed
path validation as a warning with its traceback), so these commands silence them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

import asyncpg

from exchange.cli.common import settings_of
from exchange.config import Settings
from exchange.store import database as db
from exchange.store.ledger import PostgresLedger
from signing import SigningError

__all__ = ["add_audit_commands"]


def _quiet() -> None:
    from exchange.logs import setup_logging

    setup_logging("ERROR")
    for name in ("pyhanko", "pyhanko_certvalidator"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def _verdict_table(checks, title: str) -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table("item", "verdict", "detail", title=title)
    for check in checks:
        table.add_row(check.item, "[green]OK[/]" if check.ok else "[red]FAIL[/]", check.detail)
    console = Console()
    console.print(table)
    failed = sum(not c.ok for c in checks)
    if failed:
        console.print(f"[red bold]{failed} of {len(checks)} checks failed.[/]")
        return 1
    console.print(f"[green bold]All {len(checks)} checks passed.[/]")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from exchange.audit import BundleError, load_anchors, verify_bundle

    _quiet()
    try:
        anchors = load_anchors(args.trust)
        checks = asyncio.run(verify_bundle(Path(args.bundle), anchors, args.head))
    except BundleError as exc:
        print(f"error: the bundle is refused: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([c.__dict__ for c in checks], ensure_ascii=False, indent=2))
        return 0 if all(c.ok for c in checks) else 1
    return _verdict_table(checks, f"Evidence bundle {args.bundle}")


def _current_key(settings: Settings):
    """The certificate of the key the hub signs with now, or a sentence saying why there is none."""
    from exchange.hub import open_hub_key

    try:
        with open_hub_key(settings, create=False) as key:
            return key.cert, None
    except SigningError as exc:
        return None, f"the hub's key cannot be opened: {exc.message}"


async def _listed_keys(pool: asyncpg.Pool):
    from exchange.hubkeys import hub_key

    try:
        return [hub_key(r) for r in await PostgresLedger(pool).keys()]
    except asyncpg.UndefinedTableError:  # the hub has not run this version yet
        return []


_LABELS = {
    "rows": "TAMPERED",
    "head-fields": "TAMPERED",
    "bad-signature": "BAD SIGNATURE",
    "former-key": "NOT THE HUB'S KEY",
    "unknown-key": "UNKNOWN KEY",
}


def cmd_audit_check(args: argparse.Namespace) -> int:
    from exchange.audit import load_anchors
    from exchange.hubkeys import key_id
    from exchange.ledger_check import KINDS, HeadChecker, check_ledger

    _quiet()
    settings = settings_of(args)
    note = current = None
    if args.trust:
        anchors = load_anchors(args.trust)
    else:
        cert, note = _current_key(settings)
        anchors = [cert] if cert is not None else []
        current = key_id(cert) if cert is not None else None

    async def run():
        pool = await db.connect(settings, min_size=1, max_size=2)
        try:
            checker = HeadChecker(
                anchors, await _listed_keys(pool), current, explicit_trust=bool(args.trust)
            )
            return await check_ledger(PostgresLedger(pool), checker)
        finally:
            await pool.close()

    report = asyncio.run(run())
    print(f"ledger: {report.leaves} leaves, {report.heads_checked} signed heads checked")
    if note:
        print(f"note: {note}; no head can be trusted without --trust")
    if report.ok:
        print("consistent: every event matches its leaf, the tree and every signed head")
        return 0
    for kind, words in KINDS.items():
        count = report.counts.get(kind, 0)
        if not count:
            continue
        what = f"{words} ({count})"
        if kind == "rows":
            first = report.first_bad_leaf
            what += (
                f": first leaf that no longer matches: {first}"
                if first is not None
                else ": the tree no longer matches a signed head"
            )
        print(f"{_LABELS[kind]}: {what}")
        for finding in (f for f in report.findings if f.kind == kind):
            print(f"  - {finding.message}")
        if report.omitted[kind]:
            print(f"  … and {report.omitted[kind]} more")
    return 1


def cmd_hub_certificate(args: argparse.Namespace) -> int:
    from exchange.hubkeys import chain_of, key_id, pem_chain

    _quiet()
    settings = settings_of(args)
    if not args.all:
        from exchange.hub import open_hub_key

        with open_hub_key(settings, create=False) as key:
            sys.stdout.write(pem_chain(chain_of(key)))
        return 0
    cert, _ = _current_key(settings)
    current = key_id(cert) if cert is not None else None

    async def run():
        pool = await db.connect(settings, min_size=1, max_size=2)
        try:
            return await _listed_keys(pool)
        finally:
            await pool.close()

    keys = asyncio.run(run())
    if not keys:
        print("error: the hub has recorded no key yet (start it once)", file=sys.stderr)
        return 1
    for key in keys:
        mark = ", current" if key.key_id == current else ""
        sys.stdout.write(
            f"# key {key.key_id}{mark}\n# {key.subject}\n"
            f"# used {key.first_used.isoformat()} to {key.last_used.isoformat()}\n{key.chain_pem}"
        )
    return 0


def add_audit_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``audit verify``, ``audit check`` and ``hub certificate``."""
    au = sub.add_parser("audit", help="check evidence and the ledger").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = au.add_parser(
        "verify",
        help="check an evidence bundle offline",
        description="Checks the signed tree head (and names the key that signed it), every "
        "leaf's inclusion proof, the package and status bytes against the ledger, and the hub's "
        "receipts. Needs only the bundle and the trust anchors (the hub's root certificate). "
        "Bundles of the wrong shape, or with members their manifest does not list, are refused. "
        "Exit 0 when every check passes.",
    )
    p.add_argument("bundle", help="the .asice file from GET /v1/packages/{id}/evidence")
    p.add_argument(
        "--trust",
        action="append",
        required=True,
        type=Path,
        help="trust anchor certificate (PEM or DER); repeatable",
    )
    p.add_argument(
        "--head",
        type=Path,
        help="a newer signed head (GET /v1/ledger/heads?"
        "consistency_from=N) to prove the log only grew since the bundle",
    )
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.set_defaults(func=cmd_audit_verify)
    p = au.add_parser(
        "check",
        help="recompute the ledger from the database and compare with the signed heads",
        description="Reports rows edited, deleted or reordered directly in PostgreSQL, with the "
        "first leaf that no longer matches; and, apart from those, heads whose signature does not "
        "verify, heads signed by a key that is not (or no longer) the hub's, and heads signed by "
        "an unknown key. Each head is checked with the key it names. Exit 1 when anything is off.",
    )
    p.add_argument(
        "--trust",
        action="append",
        type=Path,
        help="anchor for the head signatures, repeatable (default: the certificate of the key "
        "the hub signs with now; after a rotation add the former keys' certificates or their CA)",
    )
    p.set_defaults(func=cmd_audit_check)
    hub = sub.add_parser("hub", help="the hub's own signing keys").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = hub.add_parser(
        "certificate",
        help="print the certificate chain (PEM) of the hub's signing key",
        description="The chain of the key the hub signs heads and receipts with now; with --all "
        "the chain of every key it has used, oldest first, each after '#' lines naming its key id "
        "(SHA-256 of the certificate), subject and period of use.",
    )
    p.add_argument("--all", action="store_true", help="every key the hub has used")
    p.set_defaults(func=cmd_hub_certificate)
