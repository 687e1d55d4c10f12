"""Request bodies, read by the hub itself: ``Content-Encoding`` decoded here, limits counted on
the decoded bytes, and a client that stops sending refused with ``408``.

aiohttp's automatic decompression is turned off (``auto_decompress=False`` in ``serve``): it
answers an unknown coding with a plain-text 400, lets a truncated gzip stream pass as a short
body and surfaces a corrupt one as an exception after the handler has started. Decoding here
gives each of those its own JSON code, and the output of every step is bounded so a small
compressed body cannot inflate in memory past ``max_body_bytes``.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Iterator

from aiohttp import web

from exchange.errors import HubError

__all__ = ["ACCEPTED_ENCODINGS", "read_body", "stream_body"]

ACCEPTED_ENCODINGS = "gzip, deflate"
_STEP = 256 * 1024  # most decoded bytes produced from one step of input


def _bad_encoding(why: str) -> HubError:
    return HubError("body.bad_encoding", f"the body does not decode: {why}")


class _Decoder:
    """Incremental gzip or deflate decoding with bounded output per step."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._z: zlib._Decompress | None = None  # type: ignore[name-defined]

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        if not chunk:
            return
        if self._z is None:
            if self.coding == "deflate":
                # RFC 9110 says zlib-wrapped; some clients send raw deflate: accept both.
                wbits = zlib.MAX_WBITS if chunk[0] & 0x0F == 8 else -zlib.MAX_WBITS
            else:
                wbits = 16 + zlib.MAX_WBITS
            self._z = zlib.decompressobj(wbits)
        elif self._z.eof:
            raise _bad_encoding(f"bytes after the end of the {self.coding} stream")
        data = chunk
        while True:
            try:
                out = self._z.decompress(data, _STEP)
            except zlib.error as exc:
                raise _bad_encoding(f"{self.coding}: {exc}") from None
            if out:
                yield out
            if self._z.eof:
                if self._z.unused_data or self._z.unconsumed_tail:
                    raise _bad_encoding(f"bytes after the end of the {self.coding} stream")
                return
            data = self._z.unconsumed_tail
            if not data and len(out) < _STEP:
                return

    def finish(self) -> None:
        if self._z is not None and not self._z.eof:
            raise _bad_encoding(f"the {self.coding} stream is truncated")


def _decoder(request: web.BaseRequest) -> _Decoder | None:
    raw = request.headers.get("Content-Encoding", "")
    codings = [c.strip().lower() for c in raw.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return _Decoder("deflate" if codings[0] == "deflate" else "gzip")
    raise HubError(
        "request.unsupported_encoding",
        f"Content-Encoding {raw[:40]!r} is not supported; send {ACCEPTED_ENCODINGS} or none",
        headers={"Accept-Encoding": ACCEPTED_ENCODINGS},
    )


async def stream_body(
    request: web.BaseRequest, *, idle_timeout: float, deadline: float, min_rate: int = 0
) -> AsyncIterator[bytes]:
    """The decoded body in chunks. A pause longer than ``idle_timeout`` between two chunks, a
    body not complete ``deadline`` seconds after the handler started reading, or one arriving
    slower than ``min_rate`` bytes a second on average (after its first ``idle_timeout``
    seconds) is a 408; a client that goes away mid-body is ``request.aborted``."""
    decoder = _decoder(request)
    loop = asyncio.get_running_loop()
    started = loop.time()
    end = started + deadline
    received = 0
    while True:
        wait = min(idle_timeout, end - loop.time())
        try:
            if wait <= 0:
                raise TimeoutError
            async with asyncio.timeout(wait):
                chunk = await request.content.readany()
        except TimeoutError:
            raise _late() from None
        except web.RequestPayloadError as exc:
            raise HubError("body.malformed", f"the body is not valid HTTP: {exc}") from None
        except (ConnectionError, OSError):
            raise HubError("request.aborted", "the client went away mid-body") from None
        if not chunk:
            break
        received += len(chunk)
        elapsed = loop.time() - started
        if min_rate and elapsed > idle_timeout and received < min_rate * elapsed:
            raise _late()
        if decoder is None:
            yield chunk
        else:
            for piece in decoder.feed(chunk):
                yield piece
    if decoder is not None:
        decoder.finish()


def _late() -> HubError:
    return HubError(
        "request.timeout", "the body did not arrive in time; send it again without pauses"
    )


async def read_body(
    request: web.BaseRequest, *, limit: int, idle_timeout: float, deadline: float
) -> bytes:
    """A small body, whole: at most ``limit`` decoded bytes (else 413)."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in stream_body(request, idle_timeout=idle_timeout, deadline=deadline):
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


def _too_large(limit: int) -> HubError:
    return HubError("body.too_large", f"the body is larger than the limit of {limit} bytes")
