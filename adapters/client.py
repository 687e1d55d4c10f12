"""A small async client for agency systems (DMS) talking to the hub's ``/v1`` API.

    async with HubClient(url, client_id, client_secret) as hub:
        sent = await hub.submit(package_bytes)
        for item in (await hub.inbox())["items"]:
            data = await hub.fetch(item["id"])
            ...  # store it safely, then:
            await hub.ack(item["id"])

Tokens are fetched on first use and renewed shortly before they expire.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp

__all__ = ["HubClient", "HubClientError"]


class HubClientError(Exception):
    """The hub refused a request; ``code`` is the hub's stable error code."""

    def __init__(self, status: int, code: str, message: str, body: dict | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body or {}


class HubClient:
    """One agency's session with the hub."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._session = session
        self._own_session = session is None
        self._token: str | None = None
        self._token_expiry = 0.0

    async def __aenter__(self) -> HubClient:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _raise_for(self, resp: aiohttp.ClientResponse) -> None:
        if resp.status < 400:
            return
        try:
            body = await resp.json()
            err = body["error"]
            raise HubClientError(resp.status, err["code"], err["message"], body)
        except (aiohttp.ContentTypeError, KeyError, TypeError, ValueError):
            raise HubClientError(resp.status, "http", await resp.text()) from None

    async def token(self) -> str:
        """A valid bearer token (cached until a minute before expiry)."""
        if self._token and time.monotonic() < self._token_expiry:
            return self._token
        async with self.session.post(
            f"{self.base_url}/v1/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
            },
        ) as resp:
            await self._raise_for(resp)
            body = await resp.json()
        self._token = body["access_token"]
        self._token_expiry = time.monotonic() + max(0, body["expires_in"] - 60)
        return self._token

    async def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token()}"}

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict:
        async with self.session.request(
            method, f"{self.base_url}{path}", headers=await self._headers(), **kwargs
        ) as resp:
            await self._raise_for(resp)
            return await resp.json()

    async def submit(self, package: bytes) -> dict:
        """Send an edXML package (document or status); returns the hub's answer."""
        headers = await self._headers()
        headers["Content-Type"] = "application/xml"
        async with self.session.post(
            f"{self.base_url}/v1/packages", data=package, headers=headers
        ) as resp:
            await self._raise_for(resp)
            return await resp.json()

    async def inbox(self, after: str | None = None, limit: int = 100) -> dict:
        """Packages waiting for this agency, oldest first."""
        params: dict[str, str | int] = {"limit": limit}
        if after:
            params["after"] = after
        return await self._json("GET", "/v1/inbox", params=params)

    async def fetch(self, package_id: str) -> bytes:
        """The exact bytes of a package."""
        async with self.session.get(
            f"{self.base_url}/v1/packages/{package_id}", headers=await self._headers()
        ) as resp:
            await self._raise_for(resp)
            return await resp.read()

    async def ack(self, package_id: str) -> dict:
        return await self._json("POST", f"/v1/packages/{package_id}/ack")

    async def trail(self, package_id: str) -> dict:
        return await self._json("GET", f"/v1/packages/{package_id}/trail")

    async def agencies(self, **filters: str) -> list[dict]:
        return (await self._json("GET", "/v1/agencies", params=filters))["items"]
