"""Running the hub's HTTP server: as a context manager (demo, tests) or until a signal (serve)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from exchange.api import make_app
from exchange.config import Settings
from exchange.hub import Hub

__all__ = ["running_hub", "serve_forever"]


@contextlib.asynccontextmanager
async def running_hub(
    settings: Settings, *, consume: bool = True
) -> AsyncIterator[tuple[Hub, str]]:
    """Start the hub and its API; yields the hub and its base URL. Port 0 picks a free port."""
    hub = Hub(settings, consume=consume)
    await hub.start()
    runner = web.AppRunner(make_app(hub), access_log=None, handle_signals=False)
    try:
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port, backlog=1024)
        await site.start()
        port = runner.addresses[0][1]
        yield hub, f"http://{settings.host}:{port}"
    finally:
        await runner.cleanup()
        await hub.stop()


async def serve_forever(settings: Settings, *, consume: bool = True) -> None:
    """Serve until SIGINT or SIGTERM, then stop cleanly (in-flight requests finish)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_hub(settings, consume=consume) as (_, url):
        print(f"lienthong hub listening on {url} (Ctrl-C to stop)", flush=True)
        await stop.wait()
