"""The web console at ``/console``: server-rendered pages (aiohttp + Jinja2, no script) for
operators, clerks and auditors, Vietnamese first with an English switch (``?lang=en``)."""

from __future__ import annotations

from aiohttp import web

from exchange.http.console import operations, pages, signin
from exchange.http.login import LoginGuard
from exchange.http.v1 import HUB

__all__ = ["CONSOLE_ROUTES", "add_console_routes"]


async def _home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/console/dashboard")


CONSOLE_ROUTES = [
    ("GET", "/console", _home),
    ("GET", "/console/", _home),
    ("GET", "/console/login", signin.sign_in_form),
    ("POST", "/console/login", signin.sign_in),
    ("POST", "/console/logout", signin.sign_out),
    ("GET", "/console/dashboard", pages.dashboard),
    ("GET", "/console/report.{kind:csv|html}", pages.report_file),
    ("GET", "/console/inbox", pages.inbox),
    ("GET", "/console/sent", pages.documents),
    ("GET", "/console/documents/{id}", pages.document),
    ("GET", "/console/documents/{id}/evidence", pages.evidence),
    ("GET", "/console/registry", pages.registry),
    ("GET", "/console/ledger", pages.ledger),
    ("GET", "/console/operations", operations.operations),
    ("POST", "/console/operations/redeliver", operations.redeliver),
    ("POST", "/console/operations/revoke", operations.revoke),
]


def add_console_routes(app: web.Application) -> None:
    """Mount the console's routes on the hub's application (after its hub is set)."""
    app[signin.CONSOLE_LOGINS] = LoginGuard(app[HUB].settings)
    for method, path, handler in CONSOLE_ROUTES:
        app.router.add_route(method, path, handler)
