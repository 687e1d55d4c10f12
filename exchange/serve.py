"""Running the hub's HTTP server: as a context manager (demo, tests) or until a signal (serve)."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from exchange.api import make_app
from exchange.config import Settings
from exchange.guard import AIOHTTP_LIMITS, ConnectionGuard, GuardLimits
from exchange.hub import Hub
from exchange.tls import server_context

__all__ = ["running_hub", "serve_forever", "serve_processes"]


@contextlib.asynccontextmanager
async def running_hub(
    settings: Settings, *, consume: bool = True, reuse_port: bool = False
) -> AsyncIterator[tuple[Hub, str]]:
    """Start the hub and its API; yields the hub and its base URL. Port 0 picks a free port.

    The listener is built here rather than with aiohttp's ``TCPSite`` so that each connection's
    protocol is aiohttp's own wrapped in a :class:`~exchange.guard.ConnectionGuard` (request
    head deadline, JSON refusals of over-long heads), optionally over TLS."""
    context = server_context(settings)  # fails before anything starts on a bad certificate
    hub = Hub(settings, consume=consume)
    await hub.start()
    runner = web.AppRunner(
        make_app(hub),
        access_log=None,
        handle_signals=False,
        keepalive_timeout=settings.keepalive_timeout_seconds,
        lingering_time=min(10.0, settings.body_idle_timeout_seconds),
        auto_decompress=False,  # exchange.bodies decodes, with its own codes and limits
        **AIOHTTP_LIMITS,
    )
    server: asyncio.Server | None = None
    try:
        await runner.setup()
        limits = GuardLimits(header_timeout=settings.header_timeout_seconds)
        protocol = runner.server
        assert protocol is not None
        server = await asyncio.get_running_loop().create_server(
            lambda: ConnectionGuard(protocol(), limits),
            settings.host,
            settings.port,
            ssl=context,
            ssl_handshake_timeout=settings.header_timeout_seconds if context else None,
            backlog=1024,
            reuse_port=reuse_port or None,
        )
        port = server.sockets[0].getsockname()[1]
        scheme = "https" if context else "http"
        yield hub, f"{scheme}://{settings.host}:{port}"
    finally:
        if server is not None:
            server.close()  # stop accepting; open connections finish below
        await runner.cleanup()
        if server is not None:
            await server.wait_closed()
        await hub.stop()


async def serve_forever(
    settings: Settings, *, consume: bool = True, reuse_port: bool = False, announce: bool = True
) -> None:
    """Serve until SIGINT or SIGTERM, then stop cleanly (in-flight requests finish)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_hub(settings, consume=consume, reuse_port=reuse_port) as (_, url):
        if announce:
            print(f"lienthong hub listening on {url} (Ctrl-C to stop)", flush=True)
        await stop.wait()


def _worker(settings: Settings, consume: bool) -> None:
    from exchange.logs import setup_logging

    setup_logging(settings.log_level)
    asyncio.run(serve_forever(settings, consume=consume, reuse_port=True, announce=False))


def serve_processes(settings: Settings, *, consume: bool = True, workers: int = 1) -> None:
    """Serve from ``workers`` processes sharing the port (SO_REUSEPORT); the kernel spreads the
    connections. The hubs coordinate through PostgreSQL (outbox claims, one ledger sequencer)
    and RabbitMQ (consumers share each queue)."""
    if workers <= 1:
        asyncio.run(serve_forever(settings, consume=consume))
        return
    if settings.port == 0:
        raise ValueError("several workers need a fixed port")
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_worker, args=(settings, consume), name=f"lienthong-{n}")
        for n in range(1, workers)
    ]
    for child in children:
        child.start()
    try:
        asyncio.run(serve_forever(settings, consume=consume, reuse_port=True))
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
        for child in children:
            child.join(30)
