"""The console's pages. Visibility is the API's: a clerk sees its own agency's documents
(through the same :meth:`Deliveries.locate` and trail rules), and another agency's document
is 404 for it; operators and auditors see every document, as the document's sender does."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from aiohttp import web

from exchange import kpi, trails
from exchange.errors import HubError
from exchange.evidence import build_bundle
from exchange.http.console.common import Viewer, console_page, error_page, lang_of, render
from exchange.http.v1 import HUB
from exchange.kpi.calendar import VIETNAM
from exchange.kpi.render import chart_set, render_csv, render_html
from exchange.merkle import ProofError, verify_inclusion
from schemas import OrganId

__all__ = [
    "dashboard",
    "document",
    "documents",
    "evidence",
    "inbox",
    "ledger",
    "registry",
    "report_file",
]


def _kpi_query(request: web.Request, viewer: Viewer) -> kpi.KpiQuery:
    params = {k: request.query[k] for k in ("from", "to") if request.query.get(k)}
    query = kpi.parse_query(params)
    if viewer.agency:  # a clerk sees its own agency's figures only
        query = kpi.KpiQuery(query.start, query.end, kpi.Scope(agency=viewer.agency))
    return query


@console_page()
async def dashboard(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """GET /console/dashboard: KPIs with charts, backlog, failed deliveries (operators)."""
    hub = request.app[HUB]
    try:
        query = _kpi_query(request, viewer)
    except HubError:
        return error_page(request, 400, "request.invalid_parameter", "bad_period", viewer)
    report = await kpi.kpi_report(hub.stores.kpi, query, kpi.deadlines_of(hub.settings))
    context = {"report": report, "charts": chart_set(report, lang_of(request)), "query": query}
    if viewer.role == "operator":
        depth, age = await hub.packages.outbox_gauge()
        context["backlog"] = {
            "outbox": depth,
            "age": round(age),
            **await hub.packages.copies_waiting(),
        }
        context["failed"] = await hub.stores.console.failed_deliveries(
            hub.settings.redeliver_after_seconds
        )
    return render(request, "dashboard.html.j2", viewer=viewer, **context)


@console_page()
async def report_file(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """GET /console/report.{csv,html}?from=&to=: the dashboard's KPIs to keep or print."""
    hub = request.app[HUB]
    try:
        query = _kpi_query(request, viewer)
    except HubError:
        return error_page(request, 400, "request.invalid_parameter", "bad_period", viewer)
    report = await kpi.kpi_report(hub.stores.kpi, query, kpi.deadlines_of(hub.settings))
    name = f"kpi-{query.start}-{query.end}"
    if request.match_info["kind"] == "csv":
        return web.Response(
            text=render_csv(report),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    response = web.Response(
        text=render_html(report, lang_of(request)), content_type="text/html", charset="utf-8"
    )
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


@console_page("clerk")
async def inbox(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """GET /console/inbox: what the clerk's agency received, newest first."""
    rows = await request.app[HUB].stores.console.inbox(viewer.agency)
    return render(request, "inbox.html.j2", viewer=viewer, rows=rows)


@console_page()
async def documents(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """GET /console/sent: the clerk's agency's sent documents; every agency's for the others."""
    rows = await request.app[HUB].stores.console.sent(viewer.agency)
    return render(request, "sent.html.j2", viewer=viewer, rows=rows)


async def _visible(request: web.Request, viewer: Viewer, raw_id: str):
    """(package row, the organ id whose view the viewer gets), or None: not found or not its."""
    hub = request.app[HUB]
    try:
        key = uuid.UUID(raw_id)
    except ValueError:
        return None
    row = await hub.stores.console.package(key)
    if row is None:
        return None
    if viewer.agency is None:
        return row, row["sender"]  # operators and auditors see what the sender sees
    try:
        await hub.deliveries.locate(viewer.caller(), str(key))
    except HubError:
        return None
    return row, viewer.agency


@console_page()
async def document(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """GET /console/documents/{id}: each recipient's state and statuses, the timeline, the
    verification report; 404 when the viewer's agency has no part in it."""
    hub = request.app[HUB]
    found = await _visible(request, viewer, request.match_info["id"])
    if found is None:
        return error_page(request, 404, "package.not_found", "not_found", viewer)
    row, organ = found
    trail = await trails.trail(hub.deliveries, viewer.caller(organ), str(row["id"]))
    statuses: dict[str, list[str]] = {}
    for event in trail["events"]:
        if event["event"] in ("status", "recalled"):
            statuses.setdefault(event["organ_id"], []).append(event["detail"]["status_code"])
    raw = await hub.packages.report(row["id"])
    report = json.loads(raw) if raw else None
    return render(
        request,
        "document.html.j2",
        viewer=viewer,
        package=row,
        trail=trail,
        statuses=statuses,
        report=report,
    )


@console_page()
async def evidence(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """GET /console/documents/{id}/evidence: the evidence bundle of the viewer's view."""
    found = await _visible(request, viewer, request.match_info["id"])
    if found is None:
        return error_page(request, 404, "package.not_found", "not_found", viewer)
    row, organ = found
    data = await build_bundle(request.app[HUB], row, organ)
    return web.Response(
        body=data,
        content_type="application/vnd.etsi.asic-e+zip",
        headers={"Content-Disposition": f'attachment; filename="evidence-{row["id"]}.asice"'},
    )


@console_page()
async def registry(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """GET /console/registry?q=: the four-level tree, or the entries matching a search."""
    hub = request.app[HUB]
    agencies = await hub.registry.list(limit=10_000)
    search = request.query.get("q", "").strip()[:200]
    if search:
        needle = search.casefold()
        agencies = [
            a for a in agencies if needle in a.code.casefold() or needle in a.name.casefold()
        ]
        rows = [(a, 0) for a in agencies]
    else:
        rows = _tree(agencies)
    today = dt.datetime.now(VIETNAM).date()
    return render(request, "registry.html.j2", viewer=viewer, rows=rows, q=search, today=today)


def _tree(agencies) -> list[tuple[object, int]]:
    """Agencies in tree order (each after its parent) with their depth."""
    children: dict[str | None, list] = {}
    codes = {a.code for a in agencies}
    for a in agencies:
        children.setdefault(a.parent if a.parent in codes else None, []).append(a)
    out: list[tuple[object, int]] = []

    def walk(parent: str | None, depth: int) -> None:
        for a in sorted(children.get(parent, []), key=lambda a: OrganId.parse(a.code).routing_key):
            out.append((a, depth))
            walk(a.code, depth + 1)

    walk(None, 0)
    return out


@console_page()
async def ledger(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """GET /console/ledger?package=ID: the latest signed head, and each of the package's leaves
    checked against it with an inclusion proof (clerks: their own packages only)."""
    hub = request.app[HUB]
    head = await hub.ledger.head()
    checks, asked = None, request.query.get("package", "").strip()[:64]
    if asked:
        found = await _visible(request, viewer, asked)
        checks = None if found is None else await _inclusion(hub, found[0]["id"], head)
    return render(request, "ledger.html.j2", viewer=viewer, head=head, asked=asked, checks=checks)


async def _inclusion(hub, package_id: uuid.UUID, head) -> list[dict]:
    out = []
    for leaf in await hub.stores.console.ledger_positions(package_id):
        index, result = leaf["ledger_index"], "later"
        if head is not None and index < head.tree_size:
            proof = await hub.ledger.inclusion(index, head.tree_size)
            try:
                verify_inclusion(bytes(leaf["leaf"]), index, head.tree_size, proof, head.root_hash)
                result = "ok"
            except ProofError as exc:
                result = f"FAILED: {exc}"
        out.append(
            {
                "event": leaf["event"],
                "organ_id": leaf["organ_id"],
                "index": index,
                "at": leaf["at"],
                "result": result,
            }
        )
    return out
