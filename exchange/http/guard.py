"""A thin asyncio protocol in front of aiohttp's, for what aiohttp 3.14 does not do itself:
a deadline for the request head, and JSON refusals of over-long request and header lines.

Every protocol event is passed on unchanged to aiohttp's own protocol (``runner.server()``).
The guard only looks at the bytes of a request head, that is from the first byte after the
previous response until the blank line, and it
- closes the connection with ``408 request.timeout`` when the head is not complete
  ``header_timeout`` seconds after its first byte (one header line every few seconds would
  otherwise hold a connection for as long as aiohttp's keep-alive allows);
- answers ``414 request.uri_too_long`` or ``431 request.header_too_large`` (JSON) before
  aiohttp's plain-text 400 when a line, the number of lines or the head is over its limit.
Its limits are below aiohttp's, which therefore never see such a head.

The middleware tells the guard when aiohttp hands a request to the application (the head is
complete) and when that request's task is done (its response is written): only between two
requests does the guard write to the connection itself, so it never interleaves with aiohttp.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from exchange.http.vdxp.envelope import facade_envelope

__all__ = ["AIOHTTP_LIMITS", "ConnectionGuard", "GuardLimits", "guard_middleware"]

# Given to aiohttp (AppRunner keyword arguments): above the guard's limits below.
AIOHTTP_LIMITS = {"max_line_size": 8190 + 512, "max_field_size": 8190 + 512, "max_headers": 128}


@dataclass(frozen=True)
class GuardLimits:
    header_timeout: float = 10.0
    send_timeout: float = 60.0  # a reader that takes nothing for this long is cut off
    max_line: int = 8190  # request line or header line, CRLF included
    max_lines: int = 100  # header lines after the request line
    max_head: int = 64 * 1024


log = logging.getLogger("lienthong.http")
_GUARDS: dict[asyncio.BaseProtocol, ConnectionGuard] = {}
_SECURITY_HEADERS = {"Server": "lienthong", "X-Content-Type-Options": "nosniff"}
_START = 32  # bytes enough for "POST /vdxp/"


def refusal_bytes(
    status: int, reason: str, code: str, message: str, request_start: bytes = b""
) -> bytes:
    """A complete HTTP/1.1 JSON error response that closes the connection; for a facade's
    path (``request_start`` is the head's first bytes), its envelope with status 200."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    facade = facade_envelope(request_start, code, message)
    if facade is not None:
        status, reason, body = 200, "OK", facade
    head = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: application/json; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in _SECURITY_HEADERS.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class ConnectionGuard(asyncio.Protocol):
    """Wraps one aiohttp connection protocol; see the module docstring."""

    def __init__(self, inner: asyncio.Protocol, limits: GuardLimits) -> None:
        self._inner = inner
        self._limits = limits
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._stalled: asyncio.TimerHandle | None = None  # the peer stopped reading
        self._in_head = True  # bytes now are (the start of) a request head
        self._line = 0  # bytes of the current line so far
        self._lines = 0  # complete lines of this head
        self._head = 0  # bytes of this head so far
        self._start = b""  # the head's first bytes: whose envelope a refusal takes
        self._closed = False

    # -- protocol events, all passed on --------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        _GUARDS[self._inner] = self
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        if self._in_head:
            if len(self._start) < _START:
                self._start += data[: _START - len(self._start)]
            if self._timer is None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self._limits.header_timeout, self._head_timeout)
            refusal = self._scan(data)
            if refusal is not None:
                self._refuse(*refusal)
                return
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._cancel_timer()
        if self._stalled is not None:
            self._stalled.cancel()
        _GUARDS.pop(self._inner, None)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        # The peer's window is full: if it takes nothing more for send_timeout, it is a slow
        # reader holding a connection (and a response) open, and it is cut off.
        if self._stalled is None and self._transport is not None:
            loop = asyncio.get_running_loop()
            self._stalled = loop.call_later(self._limits.send_timeout, self._send_timeout)
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None
        self._inner.resume_writing()

    def _send_timeout(self) -> None:
        self._stalled = None
        if self._transport is not None and not self._closed:
            log.info("a client that stopped reading is cut off")
            self._transport.abort()

    # -- the request head ----------------------------------------------------------------
    def _scan(self, data: bytes) -> tuple[int, str, str, str] | None:
        limits = self._limits
        pos = 0
        while pos < len(data):
            newline = data.find(b"\n", pos)
            end = len(data) if newline < 0 else newline + 1
            self._line += end - pos
            self._head += end - pos
            pos = end
            if self._line > limits.max_line or self._head > limits.max_head:
                if self._lines == 0:
                    return (414, "URI Too Long", "request.uri_too_long", "request line too long")
                return (
                    431,
                    "Request Header Fields Too Large",
                    "request.header_too_large",
                    f"a header line is over {limits.max_line} bytes or the head over "
                    f"{limits.max_head}",
                )
            if newline < 0:
                break
            length, self._line = self._line, 0
            if length <= 2:  # an empty line
                if self._lines:
                    self.head_complete()  # the rest is body, or the next request
                    break
                continue  # empty lines before a request line are ignored (RFC 9112 2.2)
            self._lines += 1
            if self._lines > limits.max_lines + 1:
                return (
                    431,
                    "Request Header Fields Too Large",
                    "request.header_too_large",
                    f"more than {limits.max_lines} header lines",
                )
        return None

    def head_complete(self) -> None:
        """The request head is in: stop looking and stop the clock."""
        self._in_head = False
        self._cancel_timer()

    def request_done(self) -> None:
        """The response is written: whatever comes next is a new request head."""
        self._in_head = True
        self._line = self._lines = self._head = 0
        self._start = b""
        self._cancel_timer()

    def _head_timeout(self) -> None:
        self._timer = None
        if self._in_head and not self._closed:
            message = f"the request head was not complete within {self._limits.header_timeout} s"
            self._refuse(408, "Request Timeout", "request.timeout", message)

    def _refuse(self, status: int, reason: str, code: str, message: str) -> None:
        self._closed = True
        self._cancel_timer()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(refusal_bytes(status, reason, code, message, self._start))
            self._transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def security_headers(response: web.StreamResponse) -> None:
    """``Server`` without a version and ``X-Content-Type-Options: nosniff``, on everything."""
    response.headers.update(_SECURITY_HEADERS)


@web.middleware
async def guard_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Tell the connection's guard (if it has one) when a request starts and is done."""
    guard = _GUARDS.get(request.protocol)
    if guard is None:
        return await handler(request)
    guard.head_complete()

    def done(_: object) -> None:
        # A body left unread is still coming (aiohttp reads and drops it, then closes or goes
        # on): the next head starts after it.
        if request.content.is_eof():
            guard.request_done()
        else:
            request.content.on_eof(guard.request_done)

    # aiohttp runs the handler and writes its response in one task per request.
    task = asyncio.current_task()
    if task is not None:
        task.add_done_callback(done)
    return await handler(request)
