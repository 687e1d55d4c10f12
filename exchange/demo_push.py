"""``lienthong demo --push``: one recipient takes its documents by push, the others pull.

A local receiver (the SDK's example, :mod:`adapters.examples.webhook_receiver`) is started on a
free port, the agency is switched to push with a fresh secret, and the demo times the push from
submission to the receiver's stored copy beside the others' arrival in their inboxes.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import time
from pathlib import Path

from aiohttp import web

from adapters.examples.webhook_receiver import make_app

__all__ = ["PushReceiver"]


class PushReceiver:
    """The demo's receiving system for one agency, on 127.0.0.1."""

    def __init__(self, organ_id: str) -> None:
        self.organ_id = organ_id
        self._folder = tempfile.TemporaryDirectory(prefix="lienthong-push-")
        self.out = Path(self._folder.name)
        self._runner: web.AppRunner | None = None
        self._hub = None
        self.url = ""

    async def start(self, hub) -> None:
        """Listen, and switch the agency to push towards this receiver."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hook"
        self._hub = hub
        secret = await hub.push_admin.switch_on(self.organ_id, self.url, new_secret_wanted=True)
        self._runner = web.AppRunner(make_app(secret, self.out), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()

    async def arrival(self, package_id: str, started: float, timeout: float = 30.0):
        """Seconds from ``started`` until the receiver stored the package (None: never)."""
        target = self.out / f"{package_id}.edxml"
        deadline = time.monotonic() + timeout
        while not target.exists():
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.005)
        return time.perf_counter() - started

    async def stop(self) -> None:
        """Back to pull, and stop listening (the business flows that follow are pulled)."""
        if self._runner is not None:
            await self._hub.push_admin.switch_off(self.organ_id)
            await self._runner.cleanup()
            self._runner = None
            self._folder.cleanup()
