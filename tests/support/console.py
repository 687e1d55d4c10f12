"""Helpers for the web console tests: users, a signed-in HTTP session, the CSRF token."""

from __future__ import annotations

import re

import aiohttp

from exchange.http.console.passwords import hash_password

PASSWORD = "mat-khau-thu-nghiem-14"


async def add_user(hub, name: str, role: str, agency: str | None = None) -> str:
    """A console user with :data:`PASSWORD`; returns its name."""
    await hub.stores.console.add_user(name, role, agency, hash_password(PASSWORD))
    return name


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


async def signed_in(url: str, name: str, password: str = PASSWORD) -> aiohttp.ClientSession:
    """A client session signed in to the console as ``name`` (cookies kept)."""
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.get(f"{url}/console/login") as r:
        token = csrf_of(await r.text())
    async with session.post(
        f"{url}/console/login",
        data={"csrf": token, "user": name, "password": password, "next": "/console/dashboard"},
        allow_redirects=False,
    ) as r:
        assert r.status == 303, await r.text()
    return session
