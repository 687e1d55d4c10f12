"""``lienthong agency ...``: credentials, signers, client certificates of an agency."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from exchange.cli.common import settings_of, with_stores

__all__ = ["add_agency_commands"]


def cmd_agency_credentials(args: argparse.Namespace) -> int:
    from exchange.auth import issue_credentials
    from schemas import normalise

    settings = settings_of(args)
    organ_id = normalise(args.organ_id)
    creds = asyncio.run(with_stores(settings, lambda s: issue_credentials(s.credentials, organ_id)))
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
    from schemas import normalise

    settings = settings_of(args)
    organ_id = normalise(args.organ_id)
    if args.cert:
        rules = [("cert", hashlib.sha256(c.dump()).hexdigest()) for c in load_anchors([args.cert])]
    elif args.organization_identifier:
        rules = [("organization_identifier", args.organization_identifier)]
    else:
        rules = [("delegate", normalise(args.delegate))]

    async def add(stores):
        for rule, value in rules:
            await stores.registry.add_signer_rule(organ_id, rule, value)

    asyncio.run(with_stores(settings, add))
    for rule, value in rules:
        print(f"{organ_id}: signers allowed by {rule} {value}")
    return 0


def cmd_agency_client_cert(args: argparse.Namespace) -> int:
    from exchange import clientcerts
    from schemas import normalise

    settings = settings_of(args)
    if args.revoke:
        done = asyncio.run(
            with_stores(settings, lambda s: clientcerts.revoke(s.credentials, args.revoke))
        )
        print(f"{args.revoke}: {'revoked' if done else 'not found or already revoked'}")
        return 0 if done else 1
    if not args.cert:
        print("error: give --cert FILE (or --revoke FINGERPRINT)", file=sys.stderr)
        return 1
    organ_id = normalise(args.organ_id)
    data = args.cert.read_bytes()
    bound = asyncio.run(
        with_stores(settings, lambda s: clientcerts.register(s.credentials, organ_id, data))
    )
    print(f"{bound.organ_id}: client certificate {bound.subject}")
    print(f"  sha256 {bound.fingerprint}, valid until {bound.not_after:%Y-%m-%d}")
    return 0


def cmd_agency_revoke(args: argparse.Namespace) -> int:
    from exchange.auth import revoke_credentials

    settings = settings_of(args)
    done = asyncio.run(
        with_stores(settings, lambda s: revoke_credentials(s.credentials, args.client_id))
    )
    print(f"{args.client_id}: {'revoked' if done else 'not found or already revoked'}")
    return 0 if done else 1


# ----- agency push (push delivery, exchange/push/) ---------------------------------------


def cmd_agency_push(args: argparse.Namespace) -> int:
    from exchange.push import PushAdmin
    from exchange.sealing import open_secret_box
    from exchange.store.push import PostgresPush
    from schemas import normalise

    settings = settings_of(args)
    organ_id = normalise(args.organ_id)
    if bool(args.url) == bool(args.off):
        print("error: give --url URL or --off", file=sys.stderr)
        return 1
    box = open_secret_box(settings)

    async def work(stores):
        admin = PushAdmin(PostgresPush(stores.pool), box, settings.push_secret_overlap_seconds)
        if args.off:
            return await admin.switch_off(organ_id)
        return await admin.switch_on(organ_id, args.url, args.new_secret)

    result = asyncio.run(with_stores(settings, work))
    if args.off:
        print(f"{organ_id}: {'back to pull' if result else 'was not on push'}")
        return 0
    print(f"{organ_id}: push to {args.url}")
    if result:
        print(f"webhook secret: {result}")
        print("The secret is shown once and stored sealed. Give it to the receiving system.")
        if args.new_secret:
            hours = settings.push_secret_overlap_seconds / 3600
            print(
                f"The previous secret signs beside it for {hours:g} h (push_secret_overlap_seconds)"
            )
    else:
        print("webhook secret: unchanged (--new-secret makes a new one)")
    return 0


def _add_push_command(ag) -> None:
    p = ag.add_parser(
        "push",
        help="deliver to the agency's system by webhook (or --off: back to pull)",
        description="Switch an agency to push delivery: the hub POSTs each document and status "
        "to URL, signed as Standard Webhooks say, and retries on a schedule. Its signing secret "
        "is printed once. Pull keeps working.",
    )
    p.add_argument("organ_id")
    p.add_argument("--url", help="where the agency's system takes pushes (http or https)")
    p.add_argument("--off", action="store_true", help="back to pull; the secret is dropped")
    p.add_argument("--new-secret", action="store_true", help="replace the signing secret")
    p.set_defaults(func=cmd_agency_push)


def add_agency_commands(sub: argparse._SubParsersAction) -> None:
    """agency credentials, signer, client-cert, revoke."""
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
    _add_push_command(ag)
