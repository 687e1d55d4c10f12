"""A small async client for agency systems (DMS) talking to the hub's ``/v1`` API.

    async with HubClient(url, client_id, client_secret) as hub:
        sent = await hub.submit(package_bytes)
        for item in (await hub.inbox())["items"]:
            data = await hub.fetch(item["id"])
            ...  # store it safely, then:
            await hub.ack(item["id"])

Tokens are fetched on first use and renewed shortly before they expire. The business flows
have helpers that build the package and send it: :meth:`HubClient.recall`,
:meth:`HubClient.update`, :meth:`HubClient.replace` (BussinessDocType 1-3),
:meth:`HubClient.recall_copy` (status 13), :meth:`HubClient.answer` (15/16), and
:meth:`HubClient.dispositions` / :meth:`HubClient.document` to read where each copy stands.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from schemas import (
    Replacement,
    build_replacement,
    build_revocation,
    build_status,
    build_update,
)

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

    async def inbox_items(self, limit: int = 100) -> AsyncIterator[dict]:
        """Every package waiting for this agency, oldest first, page after page."""
        after = None
        while True:
            page = await self.inbox(after, limit)
            for item in page["items"]:
                yield item
            if not page["items"]:
                return
            after = page["next"]

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

    # ----- business flows -----------------------------------------------------------------

    async def recall(
        self, sender: str, revoked_document_id: str, recipients: list[str], **document: Any
    ) -> dict:
        """Build and send a revocation (BussinessDocType 1) of ``sender``'s document to
        ``recipients``; ``document`` are :func:`schemas.build_document` arguments (its own
        number, notation and subject default to the revoked document's)."""
        data = build_revocation(
            revoked_document_id=revoked_document_id,
            **_flow_document(sender, recipients, revoked_document_id, "Thu hồi", document),
        )
        return await self.submit(data)

    async def update(
        self, sender: str, updated_document_id: str, recipients: list[str], **document: Any
    ) -> dict:
        """Build and send an update (BussinessDocType 2) of ``sender``'s document."""
        data = build_update(
            updated_document_id=updated_document_id,
            **_flow_document(sender, recipients, updated_document_id, "Cập nhật", document),
        )
        return await self.submit(data)

    async def replace(
        self,
        sender: str,
        replaced: list[str | Replacement],
        recipients: list[str],
        **document: Any,
    ) -> dict:
        """Build and send a replacement (BussinessDocType 3) of one or more documents (a
        DocumentId, or a :class:`schemas.Replacement` naming the organs whose copy it replaces)."""
        first = replaced[0] if isinstance(replaced[0], str) else replaced[0].document_id
        data = build_replacement(
            replaced=replaced, **_flow_document(sender, recipients, first, "Thay thế", document)
        )
        return await self.submit(data)

    async def recall_copy(self, sender: str, recipient: str, document_id: str) -> dict:
        """Status 13: the sender recalls its document from one recipient."""
        return await self.submit(
            build_status(
                sender=sender,
                response_for_organ_id=recipient,
                response_for_document_id=document_id,
                status_code="13",
            )
        )

    async def answer(
        self, recipient: str, document_sender: str, document_id: str, agree: bool
    ) -> dict:
        """Status 15 (agree) or 16 (refuse): a recipient answers a recall, an update or a
        replacement of ``document_id`` (the request's DocumentId, or the document's)."""
        return await self.submit(
            build_status(
                sender=recipient,
                response_for_organ_id=document_sender,
                response_for_document_id=document_id,
                status_code="15" if agree else "16",
            )
        )

    async def dispositions(self, package_id: str) -> dict[str, dict]:
        """Each visible recipient's copy of a package: ``state``, ``status_code``,
        ``disposition`` (active, recall_requested, recalled, recall_refused, superseded)..."""
        trail = await self.trail(package_id)
        return {r["organ_id"]: r for r in trail["recipients"]}

    async def document(self, document_id: str) -> dict:
        """A document and every package about it (``GET /v1/documents``)."""
        return await self._json("GET", "/v1/documents", params={"document_id": document_id})


def _flow_document(
    sender: str, recipients: list[str], concerned: str, verb: str, given: dict[str, Any]
) -> dict[str, Any]:
    """Arguments of a revocation, update or replacement: number and notation default to those
    of the concerned DocumentId (``OrganId,yyyy/MM/dd,Number/Notation``)."""
    number, _, notation = concerned.rsplit(",", 1)[-1].partition("/")
    return {
        "sender": sender,
        "recipients": recipients,
        "code_number": number or "0",
        "code_notation": notation or "TH",
        "subject": f"{verb} văn bản {concerned}",
        **given,
    }
