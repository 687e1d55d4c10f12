"""Signing in and out of the console: CSRF on the sign-in form too (a pre-session cookie), a
lock-out after repeated failures (kept in the database, so it holds across hub processes), and
an audit log line per failure (never the password)."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from exchange.errors import HubError
from exchange.http.console.common import Viewer, console_page, error_page, lang_of, render
from exchange.http.console.passwords import check_password
from exchange.http.console.sessions import (
    PRE_COOKIE,
    SESSION_COOKIE,
    Session,
    clear_session,
    read_session,
    set_session,
)
from exchange.http.login import LoginGuard
from exchange.http.v1 import HUB

__all__ = ["CONSOLE_LOGINS", "sign_in", "sign_in_form", "sign_out"]

# Failed sign-ins per user name and per address, in this process (as for /v1/token): on top of
# the lock-out kept in the database, it slows one address trying many names.
CONSOLE_LOGINS = web.AppKey("console_logins", LoginGuard)

log = logging.getLogger("lienthong.console")
_MAX_FIELD = 256


def _next(request: web.Request, value: str | None) -> str:
    """Where to go after signing in: a console path only (no open redirect)."""
    if value and value.startswith("/console/") and "//" not in value and "\\" not in value:
        return value
    return "/console/dashboard"


def _form(request: web.Request, message: str | None = None, status: int = 200, code=None):
    hub = request.app[HUB]
    pre = Session.anonymous(lang_of(request))
    response = render(
        request,
        "login.html.j2",
        status=status,
        csrf=pre.csrf,
        message=message,
        code=code,
        next=_next(request, request.query.get("next")),
    )
    set_session(response, hub.secrets, pre, secure=request.secure, cookie=PRE_COOKIE)
    return response


async def sign_in_form(request: web.Request) -> web.StreamResponse:
    """GET /console/login (someone signed in already goes where they were going)."""
    hub = request.app[HUB]
    session = read_session(request, hub.secrets)
    if session and session.user and await hub.stores.console.user(session.user):
        raise web.HTTPSeeOther(_next(request, request.query.get("next")))
    return _form(request)


async def sign_in(request: web.Request) -> web.StreamResponse:
    """POST /console/login: name and password; the pre-session's CSRF token must match."""
    hub = request.app[HUB]
    settings = hub.settings
    form = await request.post()
    pre = read_session(request, hub.secrets, PRE_COOKIE)
    if pre is None or not pre.csrf_matches(form.get("csrf")):
        return error_page(request, 403, "console.csrf_invalid", "csrf")
    name = str(form.get("user", ""))[:_MAX_FIELD].strip()
    password = str(form.get("password", ""))[:_MAX_FIELD]
    users = hub.stores.console
    guard, address = request.app[CONSOLE_LOGINS], request.remote or ""
    try:
        tickets = guard.admit(f"console:{name}", address)
    except HubError:
        return _form(request, "throttled", 429, "auth.throttled")
    user = await users.user(name) if name else None
    matches = await check_password(password, user["password_hash"] if user else None)
    if user is not None and user["locked"]:  # after the hash: a lock costs the same time
        log.warning("console sign-in while locked", extra={"audit": "console_locked", "user": name})
        return _form(request, "locked", 429, "console.locked")
    if not matches:
        if user is not None:
            await users.sign_in_failed(
                name, settings.console_lockout_failures, settings.console_lockout_seconds
            )
        log.warning(
            "console sign-in failed",
            extra={"audit": "console_login_failed", "user": name, "remote": request.remote},
        )
        return _form(request, "bad_login", 401, "console.bad_login")
    await users.signed_in(name)
    guard.succeeded(f"console:{name}", address, tickets)
    session = Session.signed_in(name, settings.console_session_seconds, lang_of(request))
    response = web.HTTPSeeOther(_next(request, str(form.get("next", ""))))
    set_session(response, hub.secrets, session, secure=request.secure, cookie=SESSION_COOKIE)
    response.del_cookie(PRE_COOKIE, path="/console")
    log.info("console sign-in", extra={"audit": "console_login", "user": name})
    raise response


@console_page()
async def sign_out(request: web.Request, viewer: Viewer, form) -> web.StreamResponse:
    """POST /console/logout: this session and every other one of the user end now."""
    await request.app[HUB].stores.console.end_sessions(viewer.name, time.time())
    response = web.HTTPSeeOther("/console/login")
    clear_session(response)
    raise response
