"""Webhook receivers for push tests: real aiohttp servers on 127.0.0.1 that answer as told.

async with Receiver() as r:          # 204 to everything
    r.answers = [500, 500]           # then these, one per request, before the default
    r.default = 200
    r.delay = 3.0                    # every answer this late
    r.hang = True                    # never answer
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import socket
import time
from dataclasses import dataclass

from aiohttp import web

__all__ = ["Receiver", "Received", "free_port", "standard_signature"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def standard_signature(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks' v1 signature, computed here independently of the hub."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()


class Receiver:
    """One endpoint at ``url``; ``port`` may be fixed to come back on the same address."""

    def __init__(self, port: int | None = None, default: int = 204) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.default = default
        self.answers: list[int | tuple[int, dict]] = []
        self.delay = 0.0
        self.hang = False
        self.requests: list[Received] = []
        self.in_flight = 0
        self.most_in_flight = 0  # the most requests it held at once
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Receiver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_post("/hook", self._take)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.requests]

    async def _take(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(Received(dict(request.headers), body, time.monotonic()))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.hang:
                await asyncio.sleep(3600)
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        answer = self.answers.pop(0) if self.answers else self.default
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        return web.Response(status=status, headers=headers, text=f"answer {status}")
