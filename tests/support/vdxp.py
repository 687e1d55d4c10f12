"""A client that speaks to the VDXP facade exactly as VNPT's SDKVXP does (VDXP-WIRE.md §2-4):
one parameter map for the client's lifetime, never emptied, iterated in a Java HashMap's
order; the signed header set built from it; sendEdoc's raw body with the CRLF the SDK adds and
its unpadded hex ``hash-file``; a timestamp fixed at start-up."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

import aiohttp

__all__ = ["JavaHashMap", "SdkClient", "java_timestamp", "sign_header"]


def _java_hash(text: str) -> int:
    """``String.hashCode()`` (UTF-16 code units), as a signed 32-bit int."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i : i + 2], "big")) & 0xFFFFFFFF
    return h


class JavaHashMap:
    """Insertion and iteration as ``java.util.HashMap<String, String>`` (table of 16, doubled
    past a load of 0.75; a bucket keeps insertion order, also across a resize)."""

    def __init__(self) -> None:
        self._entries: dict[str, str] = {}
        self._capacity = 16

    def put(self, key: str, value: str) -> None:
        self._entries[key] = value
        while len(self._entries) > self._capacity * 0.75:
            self._capacity *= 2

    def get(self, key: str) -> str | None:
        return self._entries.get(key)

    def _bucket(self, key: str) -> int:
        h = _java_hash(key)
        return (h ^ (h >> 16)) & (self._capacity - 1)

    def items(self) -> list[tuple[str, str]]:
        order = {k: i for i, k in enumerate(self._entries)}
        keys = sorted(self._entries, key=lambda k: (self._bucket(k), order[k]))
        return [(k, self._entries[k]) for k in keys]


def java_timestamp(at: dt.datetime | None = None) -> str:
    """``new SimpleDateFormat("ddMMyyyy'T'HHmmss+SSSS")``: the +SSSS is milliseconds."""
    at = at or dt.datetime.now()
    return at.strftime("%d%m%YT%H%M%S") + f"+{at.microsecond // 1000:04d}"


def sign_header(items: list[tuple[str, str]]) -> str:
    """gson's ``JsonObject.toString()`` of the prefixed entries: compact, non-ASCII as is."""

    def text(value: str) -> str:
        return json.dumps(value, ensure_ascii=False)

    return "{" + ",".join(f"{text('XroadVnpt-' + k)}:{text(v)}" for k, v in items) + "}"


def unpadded_hex(digest: bytes) -> str:
    return "".join(format(b, "x") for b in digest)


class SdkClient:
    """One long-lived SDK service object of a DMS (as Bkav's ServiceVPCP keeps one)."""

    def __init__(
        self, session: aiohttp.ClientSession, endpoint: str, systemid: str, secret: str
    ) -> None:
        self.session = session
        self.endpoint = endpoint
        self.secret = secret
        self.params = JavaHashMap()
        self.params.put("timestamp", java_timestamp())  # taken once, at construction
        self.params.put("systemid", systemid)

    def headers(self, content_type: str | None) -> list[tuple[str, str]]:
        """The signed header set for the map as it is now."""
        if content_type is not None:
            self.params.put("Content-Type", content_type)
        items = self.params.items()
        headers: list[tuple[str, str]] = []
        for key, value in items:
            if key == "Content-Type":
                headers.append(("Content-Type", value))
            headers.append((f"XroadVnpt-{key}", value))
        signed = sign_header(items)
        digest = hmac.new(self.secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
        headers += [
            ("XroadVnpt-sign-header-key", ";".join(k for k, _ in items)),
            ("XroadVnpt-sign-header", signed),
            ("XroadVnpt-hash-header", digest),
            ("User-Agent", "JAVASDKAgent/1.0.0 XRoad/VPCP"),
            ("XroadVnpt-version", "3.0.201608"),
        ]
        return headers

    async def call(
        self,
        operation: str,
        params: dict[str, str] | None = None,
        *,
        body: bytes = b"",
        content_type: str = "application/json",
        method: str = "POST",
        raw: bool = False,
    ):
        """One SDK call: ``params`` are put into the map (never removed); the answer's JSON
        (or bytes with ``raw``). The HTTP status must be 200."""
        for key, value in (params or {}).items():
            self.params.put(key, value)
        headers = self.headers(content_type if method == "POST" else "application/json")
        async with self.session.request(
            method, f"{self.endpoint}/{operation}", data=body, headers=headers
        ) as r:
            data = await r.read()
            assert r.status == 200, (r.status, data[:500])
        if raw:
            return data
        answer = json.loads(data)
        for key in ("status", "ErrorCode", "ErrorDesc"):
            assert isinstance(answer.get(key), str), answer
        return answer

    async def send_edoc(self, package: bytes, messagetype: str, sender: str) -> dict:
        """sendEdoc as the SDK does it: the file's bytes plus CRLF, octet-stream."""
        self.params.put("hash-file", unpadded_hex(hashlib.sha256(package).digest()))
        return await self.call(
            "sendEdoc",
            {"from": sender, "servicetype": "eDoc", "messagetype": messagetype},
            body=package + b"\r\n",
            content_type="application/octet-stream",
        )

    async def received(self, messagetype: str = "edoc") -> list[dict]:
        answer = await self.call(
            "getReceivedEdocList", {"servicetype": "eDoc", "messagetype": messagetype}
        )
        assert answer["ErrorCode"] == "0", answer
        return answer["data"]

    async def get_edoc(self, doc_id: str) -> bytes:
        params = {"docId": doc_id, "filePath": "/srv/dms/edoc"}
        answer = await self.call("getEdoc", params, body=b"{}")
        assert (answer["status"], answer["ErrorCode"]) == ("OK", "0"), answer
        return base64.b64decode(answer["data"])

    async def update_status(self, doc_id: str, status: str = "done") -> dict:
        # the field's updateStatus: lower-case docid, and {} as the body
        return await self.call("updateStatus", {"status": status, "docid": doc_id}, body=b"{}")
