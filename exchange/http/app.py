"""The aiohttp application of a hub: middlewares, shared per-app state, the routes."""

from __future__ import annotations

from aiohttp import web

from exchange.clientcerts import CertificateCache
from exchange.http import lgsp, vdxp
from exchange.http.console import add_console_routes
from exchange.http.errors import DATABASE_READY, FACADE_REFUSALS, REFUSALS, errors_middleware
from exchange.http.guard import guard_middleware, security_headers
from exchange.http.inputs import query_middleware
from exchange.http.login import LoginGuard
from exchange.http.v1 import CERTS, HEAD_SIGNS, HUB, KPI_REPORTS, LOGINS, ROUTES
from exchange.hub import Hub
from exchange.throttle import SlidingWindow

__all__ = ["make_app"]


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    security_headers(response)


def make_app(hub: Hub) -> web.Application:
    """The aiohttp application serving ``hub``; the caller starts and stops the hub."""
    app = web.Application(
        middlewares=[
            guard_middleware,
            errors_middleware,
            query_middleware,
            vdxp.slashes_middleware,
        ],
        client_max_size=1024**2,
    )
    app[HUB] = hub
    app[REFUSALS] = hub.metrics.count_refusal
    app[DATABASE_READY] = hub.database_ready.is_set
    app[LOGINS] = LoginGuard(hub.settings)
    app[HEAD_SIGNS] = SlidingWindow(
        hub.settings.head_signs_per_window, hub.settings.head_sign_window_seconds
    )
    app[KPI_REPORTS] = SlidingWindow(hub.settings.kpi_reports_per_minute, 60.0)
    app[CERTS] = CertificateCache()
    app[FACADE_REFUSALS] = {vdxp.BASE + "/": vdxp.refusal, lgsp.BASE + "/": lgsp.lgsp_refusal}
    app.on_response_prepare.append(_security_headers)
    for method, path, handler in (*ROUTES, *vdxp.ROUTES, *lgsp.ROUTES):
        app.router.add_route(method, path, handler)
    add_console_routes(app)
    return app
