"""The ``lienthong`` command. Run ``lienthong --help`` or ``lienthong COMMAND --help``."""

from __future__ import annotations

import argparse
import os
import sys

import asyncpg

from exchange.cli.agency import add_agency_commands
from exchange.cli.audit import add_audit_commands
from exchange.cli.deliveries import add_deliveries_commands
from exchange.cli.document import add_document_commands
from exchange.cli.federation import add_federation_commands
from exchange.cli.hub import add_hub_commands
from exchange.cli.registry import add_registry_commands
from exchange.cli.report import add_report_commands
from exchange.cli.user import add_user_commands
from exchange.errors import HubError
from signing import SigningError, add_sign_commands, add_verify_command

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Every command and its options."""
    parser = argparse.ArgumentParser(
        prog="lienthong",
        description="Hub for official document exchange between state agencies (edXML).",
    )
    parser.add_argument(
        "--config", help="TOML settings file (default: $LIENTHONG_CONFIG; env LIENTHONG_* wins)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_hub_commands(sub)
    add_registry_commands(sub)
    add_agency_commands(sub)
    add_audit_commands(sub)
    add_deliveries_commands(sub)
    add_sign_commands(sub)
    add_verify_command(sub)
    add_report_commands(sub)
    add_user_commands(sub)
    add_document_commands(sub)
    add_federation_commands(sub)
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
