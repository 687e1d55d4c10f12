"""Console sessions in cookies that are both signed and encrypted (AES-GCM, through the hub's
:class:`~exchange.sealing.SecretBox`: rotating its keys rotates the cookies' keys too).

The cookie holds the user's name, a CSRF token, when it was issued and its expiry; nothing else
is trusted from it (role and agency are read from the database on every request, and signing
out or a new password voids every session issued before). Before sign-in a short-lived
pre-session cookie carries the sign-in form's CSRF token.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from aiohttp import web

from exchange.sealing import SealError, SecretBox

__all__ = [
    "PRE_COOKIE",
    "SESSION_COOKIE",
    "Session",
    "clear_session",
    "read_session",
    "set_session",
]

SESSION_COOKIE = "lienthong_console"
PRE_COOKIE = "lienthong_console_pre"
_CONTEXT = b"lienthong.console.session.v1"
_PRE_SECONDS = 1800
_MAX_COOKIE = 4096


@dataclass(frozen=True)
class Session:
    """What a console cookie says: who (``user``, None before sign-in), the CSRF token, until
    when, and the chosen language."""

    user: str | None
    csrf: str
    expires: float
    lang: str = "vi"
    issued: float = 0.0

    @classmethod
    def anonymous(cls, lang: str = "vi") -> Session:
        now = time.time()
        return cls(None, secrets.token_urlsafe(32), now + _PRE_SECONDS, lang, now)

    @classmethod
    def signed_in(cls, user: str, seconds: int, lang: str) -> Session:
        now = time.time()
        return cls(user, secrets.token_urlsafe(32), now + seconds, lang, now)

    def csrf_matches(self, given: str | None) -> bool:
        """Constant-time comparison of a form's token with the session's."""
        return bool(given) and hmac.compare_digest(given.encode(), self.csrf.encode())


def _seal(box: SecretBox, session: Session) -> str:
    body = json.dumps(
        {
            "u": session.user,
            "c": session.csrf,
            "e": session.expires,
            "l": session.lang,
            "i": session.issued,
        },
        separators=(",", ":"),
    ).encode()
    return base64.urlsafe_b64encode(box.seal(body, context=_CONTEXT)).decode().rstrip("=")


def _open(box: SecretBox, value: str | None) -> Session | None:
    if not value or len(value) > _MAX_COOKIE:
        return None
    try:
        sealed = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        data = json.loads(box.open(sealed, context=_CONTEXT))
        session = Session(
            data["u"], data["c"], float(data["e"]), data.get("l", "vi"), float(data["i"])
        )
    except (SealError, ValueError, KeyError, TypeError):
        return None  # forged, tampered with, sealed with a retired key, or not ours
    return session if session.expires > time.time() else None


def read_session(request: web.Request, box: SecretBox, cookie: str = SESSION_COOKIE):
    """The valid session the request's cookie holds, else None."""
    return _open(box, request.cookies.get(cookie))


def set_session(
    response: web.StreamResponse, box: SecretBox, session: Session, *, secure: bool, cookie: str
) -> None:
    """Put the session in its cookie: HttpOnly, SameSite=Strict, path /console."""
    response.set_cookie(
        cookie,
        _seal(box, session),
        max_age=max(int(session.expires - time.time()), 0),
        path="/console",
        httponly=True,
        secure=secure,
        samesite="Strict",
    )


def clear_session(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/console")
