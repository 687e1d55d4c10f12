"""``lienthong document show DOCUMENT_ID``: a document and every package about it, with each
recipient's state, last status and disposition (what ``GET /v1/documents`` answers)."""

from __future__ import annotations

import argparse
import asyncio
import json

from exchange.cli.common import settings_of, with_stores

__all__ = ["add_document_commands", "document_table"]

_TYPES = {0: "new", 1: "revocation", 2: "update", 3: "replacement"}


def _as_organ(args: argparse.Namespace) -> str:
    """Whose view: ``--as``, else the organ id a DocumentId starts with (its sender)."""
    from schemas import OrganId

    return str(OrganId.parse(args.as_organ or args.document_id.split(",", 1)[0], field="--as"))


async def _view(stores, organ_id: str, document_id: str) -> dict:
    from exchange.auth import Caller
    from exchange.documents import document
    from exchange.store.flows import PostgresFlows

    caller = Caller(organ_id, "cli", 0.0)
    return await document(PostgresFlows(stores.pool), stores.packages, caller, document_id)


def document_table(view: dict):
    """The rich table of a document view: one row per recipient's copy of each package."""
    from rich.table import Table

    table = Table(
        "package",
        "kind",
        "received",
        "recipient",
        "state",
        "status",
        "disposition",
        "links",
        title=f"document {view['document_id']}",
    )
    for item in view["packages"]:
        kind = (
            f"status {item['status_code']}"
            if item["kind"] == "status"
            else _TYPES.get(item["business_doc_type"], "?")
        )
        links = ", ".join(f"{k['relation']} {k['package'][:8]}" for k in item["links"])
        rows = item["recipients"] or [{}]
        for index, copy in enumerate(rows):
            first = index == 0
            status = copy.get("status_code") or ""
            if copy.get("status_received") not in (None, status):
                status += f" (sent {copy['status_received']})"
            disposition = "" if item["kind"] == "status" else copy.get("disposition", "")
            if copy.get("awaiting_answer"):
                disposition += ", awaiting answer"
            table.add_row(
                item["id"][:8] if first else "",
                kind if first else "",
                item["received_at"][:19] if first else "",
                copy.get("organ_id", ""),
                copy.get("state", ""),
                status,
                disposition,
                links if first else "",
            )
    return table


def cmd_document_show(args: argparse.Namespace) -> int:
    from rich.console import Console

    settings = settings_of(args)
    organ = _as_organ(args)
    view = asyncio.run(with_stores(settings, lambda s: _view(s, organ, args.document_id)))
    if args.json:
        print(json.dumps(view, ensure_ascii=False, indent=2))
        return 0 if view["packages"] else 1
    if not view["packages"]:
        print(f"no document {args.document_id!r} sent or received by {organ}")
        return 1
    Console().print(document_table(view))
    return 0


def add_document_commands(sub: argparse._SubParsersAction) -> None:
    """document show."""
    doc = sub.add_parser("document", help="documents and the business flows").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = doc.add_parser(
        "show",
        help="a document, every package about it, and each recipient's state and disposition",
    )
    p.add_argument("document_id", help='the DocumentId, e.g. "000.00.00.G22,2024/05/02,12/VP"')
    p.add_argument(
        "--as",
        dest="as_organ",
        metavar="ORGAN_ID",
        help="whose view (default: the organ id the DocumentId starts with, its sender)",
    )
    p.add_argument("--json", action="store_true", help="print the JSON of GET /v1/documents")
    p.set_defaults(func=cmd_document_show)
