"""The ``lienthong`` command. Run ``lienthong --help`` or ``lienthong COMMAND --help``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

import asyncpg

from exchange import db
from exchange.audit_cli import add_audit_commands
from exchange.config import Settings, load_settings
from exchange.errors import HubError
from exchange.logs import setup_logging
from signing import SigningError, add_sign_commands, add_verify_command

__all__ = ["main"]


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    if getattr(args, "host", None):
        settings = settings.replace(host=args.host)
    if getattr(args, "port", None) is not None:
        settings = settings.replace(port=args.port)
    for name in ("tls_cert", "tls_key", "tls_client_ca"):
        if getattr(args, name, None):
            settings = settings.replace(**{name: str(getattr(args, name))})
    return settings


async def _with_pool(settings: Settings, work):
    await db.create_database(settings)
    await db.migrate(settings)
    pool = await db.connect(settings, min_size=1, max_size=2)
    try:
        return await work(pool)
    finally:
        await pool.close()


def cmd_serve(args: argparse.Namespace) -> int:
    from exchange.serve import serve_processes

    settings = _settings(args)
    setup_logging(settings.log_level)
    serve_processes(settings, consume=not args.no_workers, workers=args.processes)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from exchange.demo import run_demo

    settings = _settings(args)
    setup_logging("ERROR")  # the demo says in plain words what the warnings would
    return asyncio.run(run_demo(settings, keep_serving=args.keep_serving))


def cmd_db(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run() -> None:
        if args.action == "reset":
            await db.drop_schema(settings)
        await db.create_database(settings)
        await db.migrate(settings)

    asyncio.run(run())
    print(f"schema {settings.database_schema!r} is ready ({args.action})")
    return 0


def cmd_registry_import(args: argparse.Namespace) -> int:
    from exchange.registry import RegistryFileError, read_registry_file, upsert_agencies

    settings = _settings(args)
    try:
        found = read_registry_file(args.file)
    except (RegistryFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    given = None if args.replace else found.given
    inserted, updated = asyncio.run(
        _with_pool(settings, lambda p: upsert_agencies(p, found.agencies, given))
    )
    print(
        f"imported {len(found.agencies)} agencies from {args.file}: {inserted} new, "
        f"{updated} updated" + (" (replaced whole)" if args.replace else "")
    )
    return 0


def cmd_registry_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from exchange.registry import list_agencies

    settings = _settings(args)
    rows = asyncio.run(_with_pool(settings, lambda p: list_agencies(p, limit=args.limit)))
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


def cmd_agency_credentials(args: argparse.Namespace) -> int:
    from exchange.auth import issue_credentials
    from schemas import normalise

    settings = _settings(args)
    organ_id = normalise(args.organ_id)
    creds = asyncio.run(_with_pool(settings, lambda p: issue_credentials(p, organ_id)))
    if args.json:
        print(json.dumps(creds.__dict__))
    else:
        print(f"organ_id:      {creds.organ_id}")
        print(f"client_id:     {creds.client_id}")
        print(f"client_secret: {creds.client_secret}")
        print("The secret is shown once and stored only as a hash. Keep it in the DMS's vault.")
    return 0


def cmd_agency_signer(args: argparse.Namespace) -> int:
    import hashlib

    from exchange.audit import load_anchors
    from exchange.signers import add_signer_rule
    from schemas import normalise

    settings = _settings(args)
    organ_id = normalise(args.organ_id)
    if args.cert:
        rules = [("cert", hashlib.sha256(c.dump()).hexdigest()) for c in load_anchors([args.cert])]
    elif args.organization_identifier:
        rules = [("organization_identifier", args.organization_identifier)]
    else:
        rules = [("delegate", normalise(args.delegate))]

    async def add(pool):
        for rule, value in rules:
            await add_signer_rule(pool, organ_id, rule, value)

    asyncio.run(_with_pool(settings, add))
    for rule, value in rules:
        print(f"{organ_id}: signers allowed by {rule} {value}")
    return 0


def cmd_agency_client_cert(args: argparse.Namespace) -> int:
    from exchange import clientcerts
    from schemas import normalise

    settings = _settings(args)
    if args.revoke:
        done = asyncio.run(_with_pool(settings, lambda p: clientcerts.revoke(p, args.revoke)))
        print(f"{args.revoke}: {'revoked' if done else 'not found or already revoked'}")
        return 0 if done else 1
    if not args.cert:
        print("error: give --cert FILE (or --revoke FINGERPRINT)", file=sys.stderr)
        return 1
    organ_id = normalise(args.organ_id)
    data = args.cert.read_bytes()
    bound = asyncio.run(_with_pool(settings, lambda p: clientcerts.register(p, organ_id, data)))
    print(f"{bound.organ_id}: client certificate {bound.subject}")
    print(f"  sha256 {bound.fingerprint}, valid until {bound.not_after:%Y-%m-%d}")
    return 0


def cmd_agency_revoke(args: argparse.Namespace) -> int:
    from exchange.auth import revoke_credentials

    settings = _settings(args)
    done = asyncio.run(_with_pool(settings, lambda p: revoke_credentials(p, args.client_id)))
    print(f"{args.client_id}: {'revoked' if done else 'not found or already revoked'}")
    return 0 if done else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lienthong",
        description="Hub for official document exchange between state agencies (edXML).",
    )
    parser.add_argument(
        "--config", help="TOML settings file (default: $LIENTHONG_CONFIG; env LIENTHONG_* wins)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("db", help="database schema")
    p.add_argument("action", choices=["migrate", "reset"], help="reset drops every table first")
    p.set_defaults(func=cmd_db)

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

    ag = sub.add_parser("agency", help="agency credentials").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = ag.add_parser("credentials", help="issue client credentials (the secret is shown once)")
    p.add_argument("organ_id")
    p.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    p.set_defaults(func=cmd_agency_credentials)
    p = ag.add_parser(
        "signer",
        help="say who may sign packages for an agency",
        description="By default an agency's signers are the certificates whose "
        "organizationIdentifier (2.5.4.97) is its organ id. Add a certificate, another "
        "organization identifier, or a delegation: the signers of DELEGATE then sign for it too.",
    )
    p.add_argument("organ_id")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--cert", type=Path, help="a signer certificate (PEM/DER)")
    who.add_argument("--organization-identifier", help="an organizationIdentifier value")
    who.add_argument("--delegate", metavar="ORGAN_ID", help="an agency whose signers may sign")
    p.set_defaults(func=cmd_agency_signer)
    p = ag.add_parser(
        "client-cert",
        help="bind a TLS client certificate to an agency (mutual TLS)",
        description="A connection presenting this certificate (verified against tls_client_ca) "
        "is the agency: no bearer token needed, and a token of another agency is refused on it.",
    )
    p.add_argument("organ_id")
    p.add_argument("--cert", type=Path, help="the client certificate (PEM or DER)")
    p.add_argument(
        "--revoke",
        metavar="SHA256",
        help="stop accepting the certificate with this fingerprint (hex)",
    )
    p.set_defaults(func=cmd_agency_client_cert)
    p = ag.add_parser("revoke", help="revoke a client and its tokens")
    p.add_argument("client_id")
    p.set_defaults(func=cmd_agency_revoke)

    add_audit_commands(sub)
    add_sign_commands(sub)
    add_verify_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (HubError, SigningError) as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 1
    except (ConnectionError, asyncpg.CannotConnectNowError) as exc:
        print(f"error: cannot reach a service the command needs ({exc})", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # never a traceback on an operator's terminal
        if os.environ.get("LIENTHONG_DEBUG"):
            raise
        print(
            f"error: unexpected failure ({type(exc).__name__}: {exc}); "
            "set LIENTHONG_DEBUG=1 to see the traceback",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
