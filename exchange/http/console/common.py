"""What every console page shares: who is looking (from the session cookie and the database),
the role check, the CSRF check on every form, and rendering with Jinja2."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import jinja2
from aiohttp import web

from exchange.auth import Caller
from exchange.http.console.sessions import Session, read_session
from exchange.http.console.texts import LANGS, translate
from exchange.http.v1 import HUB
from exchange.kpi.calendar import VIETNAM
from exchange.kpi.render import figure_label, shown

__all__ = ["LANG_COOKIE", "Viewer", "console_page", "error_page", "lang_of", "render"]

LANG_COOKIE = "lienthong_lang"
# No script at all; inline styles only from our own templates; nothing may frame the console.
_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_env = jinja2.Environment(
    loader=jinja2.PackageLoader("exchange.http.console", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _ict(value, pattern: str = "%H:%M:%S %d/%m/%Y") -> str:
    """A time (datetime or ISO text) in Vietnam's time, as people there write it."""
    if not value:
        return ""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.astimezone(VIETNAM).strftime(pattern)


_env.filters["ict"] = _ict


@dataclass(frozen=True)
class Viewer:
    """A signed-in console user: ``agency`` is set for clerks (and only for them)."""

    name: str
    role: str
    agency: str | None
    session: Session

    def caller(self, organ_id: str | None = None) -> Caller:
        """The agency identity the API's visibility rules see this viewer as."""
        return Caller(organ_id or self.agency or "", f"console:{self.name}", 0.0)


def lang_of(request: web.Request) -> str:
    """``?lang=`` if given, else the language cookie, else Vietnamese."""
    for value in (request.query.get("lang"), request.cookies.get(LANG_COOKIE)):
        if value in LANGS:
            return value
    return "vi"


def render(
    request: web.Request,
    template: str,
    *,
    viewer: Viewer | None = None,
    status: int = 200,
    **context,
) -> web.Response:
    """A page of the console, in the viewer's language, with the security headers."""
    lang = lang_of(request)
    html = _env.get_template(template).render(
        t=lambda key: translate(key, lang),
        lang=lang,
        viewer=viewer,
        path=request.path,
        here=request.rel_url,
        label=lambda name: figure_label(name, lang),
        shown=shown,
        **context,
    )
    response = web.Response(text=html, content_type="text/html", charset="utf-8", status=status)
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.query.get("lang") in LANGS:
        response.set_cookie(
            LANG_COOKIE, request.query["lang"], path="/console", samesite="Strict", httponly=True
        )
    return response


def error_page(request: web.Request, status: int, code: str, key: str, viewer=None):
    """An HTML refusal carrying its stable code (``data-code``), never a stack trace."""
    return render(request, "error.html.j2", viewer=viewer, status=status, code=code, key=key)


Handler = Callable[..., Awaitable[web.StreamResponse]]


def _voided(session: Session, valid_after: dt.datetime | None) -> bool:
    return valid_after is not None and session.issued < valid_after.timestamp()


def console_page(*roles: str) -> Callable[[Handler], Handler]:
    """A console handler for signed-in users of ``roles`` (every role when none is given).
    Without a valid session: redirect to sign-in. A POST must carry the session's CSRF token
    in its ``csrf`` field, else 403 ``console.csrf_invalid``; the handler gets the form."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def page(request: web.Request) -> web.StreamResponse:
            hub = request.app[HUB]
            session = read_session(request, hub.secrets)
            user = await hub.stores.console.user(session.user) if session and session.user else None
            if user is None or user["locked"] or _voided(session, user["sessions_valid_after"]):
                raise web.HTTPSeeOther(f"/console/login?next={request.path}")
            viewer = Viewer(user["name"], user["role"], user["agency"], session)
            if roles and viewer.role not in roles:
                return error_page(request, 403, "console.forbidden", "forbidden", viewer)
            if request.method == "POST":
                form = await request.post()
                if not session.csrf_matches(form.get("csrf")):
                    return error_page(request, 403, "console.csrf_invalid", "csrf", viewer)
                return await handler(request, viewer, form)
            return await handler(request, viewer)

        return page

    return wrap
