"""Console cookies are sealed (signed and encrypted) and expire; passwords are Argon2id."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time

from aiohttp import web

from exchange.http.console import sessions
from exchange.http.console.passwords import check_password, hash_password
from exchange.http.console.sessions import Session
from exchange.sealing import SecretBox


class _Request:
    def __init__(self, value: str | None) -> None:
        self.cookies = {} if value is None else {sessions.SESSION_COOKIE: value}


def _sealed(box: SecretBox, session: Session) -> str:
    response = web.Response()
    sessions.set_session(response, box, session, secure=True, cookie=sessions.SESSION_COOKIE)
    cookie = response.cookies[sessions.SESSION_COOKIE]
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Strict"
    assert cookie["path"] == "/console"
    return cookie.value


def _box() -> SecretBox:
    return SecretBox([secrets.token_bytes(32)])


def test_a_sealed_session_opens_only_with_its_key_untouched_and_in_time():
    box = _box()
    session = Session.signed_in("an", 3600, "en")
    value = _sealed(box, session)
    assert b"an" not in base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))  # encrypted
    assert sessions.read_session(_Request(value), box) == session
    flipped = value[:10] + ("A" if value[10] != "A" else "B") + value[11:]
    assert sessions.read_session(_Request(flipped), box) is None  # authenticated
    assert sessions.read_session(_Request(value), _box()) is None  # another hub's key
    expired = Session("an", "t", time.time() - 1, "vi", time.time() - 10)
    assert sessions.read_session(_Request(_sealed(box, expired)), box) is None
    for junk in (None, "", "%%%", "x" * 5000):
        assert sessions.read_session(_Request(junk), box) is None


def test_csrf_tokens_are_fresh_and_compared_whole():
    a, b = Session.anonymous(), Session.anonymous()
    assert a.csrf != b.csrf and len(a.csrf) >= 40
    assert a.csrf_matches(a.csrf)
    assert not a.csrf_matches(a.csrf[:-1]) and not a.csrf_matches("") and not a.csrf_matches(None)


def test_passwords_are_argon2id_with_a_fresh_salt():
    one, two = hash_password("mot-mat-khau-dai"), hash_password("mot-mat-khau-dai")
    assert one.startswith("$argon2id$v=19$m=19456,t=2,p=1$") and one != two
    assert asyncio.run(check_password("mot-mat-khau-dai", one))
    assert not asyncio.run(check_password("mot-mat-khau-dai!", one))
    assert not asyncio.run(check_password("mot-mat-khau-dai", None))  # unknown user
    assert not asyncio.run(check_password("x", "not a hash"))
