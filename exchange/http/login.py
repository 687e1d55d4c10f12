"""``POST /v1/token``: OAuth2 client credentials, with checked input, throttled failures and an
audit record of each failed login.

Failures are counted per client id and per remote address before the secret is checked, so
neither guessing one client's secret nor spraying many ids from one address gets far, and a
throttled attempt costs no scrypt. An address from which a client id recently logged in keeps
being let through for that id: a stranger guessing its secret cannot lock the real DMS out.
"""

from __future__ import annotations

import json
import logging
import time
from urllib.parse import unquote_to_bytes

from aiohttp import BasicAuth, web

from exchange.auth import issue_token
from exchange.config import Settings
from exchange.errors import HubError
from exchange.http.bodies import read_body
from exchange.http.inputs import check_text
from exchange.throttle import SlidingWindow, too_many

__all__ = ["LoginGuard", "token_response"]

audit = logging.getLogger("lienthong.security")

_MAX_BODY = 16 * 1024
_MAX_ID = 128
_MAX_SECRET = 512
_TRUST_SECONDS = 24 * 3600
_MAX_TRUSTED = 20_000


class LoginGuard:
    """Failed-login throttles of one hub process."""

    def __init__(self, settings: Settings) -> None:
        window = settings.login_window_seconds
        self.by_client = SlidingWindow(settings.login_failures_per_client, window)
        self.by_address = SlidingWindow(settings.login_failures_per_address, window)
        self._trusted: dict[tuple[str, str], float] = {}

    def admit(self, client_id: str, address: str) -> tuple[float, float]:
        """Count an attempt as a failure until it succeeds; 429 when over a limit. A client id
        that logged in from this address before is held to neither limit there: strangers
        (from anywhere, or from the same proxy or NAT) cannot lock it out."""
        wait = None
        if not self._is_trusted(client_id, address):
            limits = (self.by_address.retry_after(address), self.by_client.retry_after(client_id))
            wait = max((w for w in limits if w is not None), default=None)
        if wait is not None:
            audit.warning(
                "login throttled",
                extra={"audit": "login_throttled", "client_id": client_id[:64], "remote": address},
            )
            raise too_many("auth.throttled", "too many failed logins", wait)
        return self.by_client.hit(client_id), self.by_address.hit(address)

    def forgive(self, client_id: str, address: str, tickets: tuple[float, float]) -> None:
        """The attempt was not a wrong secret (it succeeded, or the hub could not judge it)."""
        self.by_client.forgive(client_id, tickets[0])
        self.by_address.forgive(address, tickets[1])

    def succeeded(self, client_id: str, address: str, tickets: tuple[float, float]) -> None:
        self.forgive(client_id, address, tickets)
        if len(self._trusted) >= _MAX_TRUSTED:
            self._trusted.clear()
        self._trusted[(client_id, address)] = time.monotonic() + _TRUST_SECONDS

    def _is_trusted(self, client_id: str, address: str) -> bool:
        until = self._trusted.get((client_id, address))
        return until is not None and until > time.monotonic()


def _form(body: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        text = body.decode("ascii")
        for part in filter(None, text.split("&")):
            raw_name, _, raw_value = part.partition("=")
            name = unquote_to_bytes(raw_name.replace("+", " ")).decode("utf-8")
            value = unquote_to_bytes(raw_value.replace("+", " ")).decode("utf-8")
            if name in fields:
                raise HubError("request.invalid_parameter", f"{name} is repeated", field=name)
            fields[name] = value
    except UnicodeError:
        raise HubError(
            "request.invalid_parameter", "the form is not valid UTF-8", field="body"
        ) from None
    return fields


async def _fields(request: web.Request, settings: Settings) -> dict:
    body = await read_body(
        request,
        limit=_MAX_BODY,
        idle_timeout=settings.body_idle_timeout_seconds,
        deadline=settings.body_idle_timeout_seconds,
    )
    if not body:
        return {}
    if request.content_type == "application/json":
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # UnicodeDecodeError too; deep nesting
            raise HubError("request.invalid_json", "the body is not JSON") from None
        if not isinstance(data, dict):
            raise HubError("request.invalid_json", "the body must be a JSON object")
        return data
    if request.content_type == "application/x-www-form-urlencoded":
        return _form(body)
    raise HubError(
        "request.unsupported_media_type",
        "send the token request as application/x-www-form-urlencoded or application/json",
    )


def _text(value: object, field: str, max_length: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise HubError("request.invalid_parameter", f"{field} must be a string", field=field)
    return check_text(value, field, max_length, vschar=True)


async def token_response(
    request: web.Request, credentials, settings: Settings, guard: LoginGuard
) -> web.Response:
    """Exchange client credentials (form or JSON body, or HTTP Basic) for a bearer token."""
    data = await _fields(request, settings)
    client_id = _text(data.get("client_id"), "client_id", _MAX_ID)
    client_secret = _text(data.get("client_secret"), "client_secret", _MAX_SECRET)
    basic = request.headers.get("Authorization", "")
    if basic.lower().startswith("basic "):
        try:
            auth = BasicAuth.decode(basic)
        except ValueError:
            raise HubError("auth.invalid_client", "malformed Basic credentials") from None
        client_id = _text(auth.login, "client_id", _MAX_ID)
        client_secret = _text(auth.password, "client_secret", _MAX_SECRET)
    grant = _text(data.get("grant_type", "client_credentials"), "grant_type", 64)
    if grant != "client_credentials":
        raise HubError("auth.unsupported_grant_type", "only grant_type=client_credentials")
    if not client_id or client_secret is None:
        raise HubError("auth.invalid_client", "client_id and client_secret are required")
    address = request.remote or "unknown"
    tickets = guard.admit(client_id, address)
    try:
        access, expires_in = await issue_token(
            credentials, client_id, client_secret, settings.token_ttl_seconds
        )
    except HubError as exc:
        if exc.code != "auth.invalid_client":
            guard.forgive(client_id, address, tickets)
            raise
        # The secret is never logged; the client id is checked visible ASCII, <= 128 chars.
        audit.warning(
            "login failed",
            extra={"audit": "login_failed", "client_id": client_id[:64], "remote": address},
        )
        raise
    except BaseException:  # the database is away, the request was cancelled: not a failure
        guard.forgive(client_id, address, tickets)
        raise
    guard.succeeded(client_id, address, tickets)
    return web.json_response(
        {"access_token": access, "token_type": "Bearer", "expires_in": expires_in},
        headers={"Cache-Control": "no-store"},
    )
