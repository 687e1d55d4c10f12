"""``lienthong user add|list``: people who sign in to the web console."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from exchange.cli.common import settings_of, with_stores

__all__ = ["add_user_commands"]

_PASSWORD_VARIABLE = "LIENTHONG_CONSOLE_PASSWORD"


def _password() -> str:
    """From LIENTHONG_CONSOLE_PASSWORD (scripts), else asked twice at the terminal."""
    given = os.environ.get(_PASSWORD_VARIABLE)
    if given is not None:
        return given
    if not sys.stdin.isatty():
        raise ValueError(f"no terminal to ask the password on; set {_PASSWORD_VARIABLE}")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def cmd_user_add(args: argparse.Namespace) -> int:
    from exchange.http.console.passwords import MIN_LENGTH, hash_password
    from schemas import OrganId

    settings = settings_of(args)
    if args.role == "clerk" and not args.agency:
        raise ValueError("a clerk belongs to one agency: give --agency ORGAN_ID")
    if args.role != "clerk" and args.agency:
        raise ValueError("only clerks belong to an agency (--agency is for --role clerk)")
    if not args.name.strip() or len(args.name) > 64 or any(c.isspace() for c in args.name):
        raise ValueError("a user name is 1 to 64 characters without spaces")
    agency = str(OrganId.parse(args.agency, field="--agency")) if args.agency else None
    password = _password()
    if len(password) < MIN_LENGTH:
        raise ValueError(f"a console password has at least {MIN_LENGTH} characters")
    encoded = hash_password(password)

    async def work(stores):
        if agency and not await stores.credentials.agency_exists(agency):
            raise ValueError(f"{agency} is not in the registry")
        await stores.console.add_user(args.name, args.role, agency, encoded)

    asyncio.run(with_stores(settings, work))
    where = f" of {agency}" if agency else ""
    print(f"console user {args.name} ({args.role}{where}) saved; password stored as Argon2id")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    rows = asyncio.run(with_stores(settings, lambda s: s.console.users()))
    for r in rows:
        locked = f" locked until {r['locked_until']:%Y-%m-%d %H:%M}" if r["locked_until"] else ""
        print(f"{r['name']}\t{r['role']}\t{r['agency'] or ''}{locked}")
    return 0


def add_user_commands(sub: argparse._SubParsersAction) -> None:
    """user add, user list."""
    users = sub.add_parser("user", help="web console users").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = users.add_parser(
        "add",
        help="add a console user, or set its role and password (asked at the terminal, or "
        f"${_PASSWORD_VARIABLE})",
    )
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=("operator", "clerk", "auditor"))
    p.add_argument("--agency", metavar="ORGAN_ID", help="the clerk's agency")
    p.set_defaults(func=cmd_user_add)
    p = users.add_parser("list", help="console users, their roles and lock-outs")
    p.set_defaults(func=cmd_user_list)
