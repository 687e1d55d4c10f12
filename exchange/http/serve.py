"""Running the hub's HTTP server: as a context manager (demo, tests) or until a signal (serve)."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator

from aiohttp import web

from exchange.config import Settings
from exchange.http.app import make_app
from exchange.http.guard import AIOHTTP_LIMITS, ConnectionGuard, GuardLimits
from exchange.http.tls import server_context
from exchange.hub import Hub
from exchange.workers import exit_with_parent

__all__ = ["running_hub", "serve_forever", "serve_processes"]

log = logging.getLogger("lienthong.serve")


@contextlib.asynccontextmanager
async def running_hub(
    settings: Settings,
    *,
    consume: bool = True,
    reuse_port: bool = False,
    ready_within: float | None = 60.0,
) -> AsyncIterator[tuple[Hub, str]]:
    """Start the hub and its API; yields the hub and its base URL. Port 0 picks a free port.

    The listener is built here rather than with aiohttp's ``TCPSite`` so that each connection's
    protocol is aiohttp's own wrapped in a :class:`~exchange.guard.ConnectionGuard` (request
    head deadline, JSON refusals of over-long heads), optionally over TLS.

    ``ready_within``: wait this long for PostgreSQL and RabbitMQ (``TimeoutError`` after);
    None yields at once, with the hub bringing its dependencies up in the background.
    """
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
        # In-flight requests get half of the stop's time; the hub's own stop the rest.
        shutdown_timeout=max(1.0, settings.shutdown_timeout_seconds / 2),
        **AIOHTTP_LIMITS,
    )
    server: asyncio.Server | None = None
    try:
        await runner.setup()
        limits = GuardLimits(
            header_timeout=settings.header_timeout_seconds,
            send_timeout=settings.send_timeout_seconds,
        )
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
        if ready_within is not None:
            await hub.wait_ready(ready_within)
        yield hub, f"{scheme}://{settings.host}:{port}"
    finally:
        if server is not None:
            server.close()  # stop accepting; open connections finish below
        await runner.cleanup()
        if server is not None:
            await server.wait_closed()
        await hub.stop()


async def serve_forever(
    settings: Settings,
    *,
    consume: bool = True,
    reuse_port: bool = False,
    announce: bool = True,
    handle_sigint: bool = True,
) -> None:
    """Serve until SIGTERM (or SIGINT), then stop cleanly: in-flight requests and work get
    ``shutdown_timeout_seconds``, after which the process exits anyway."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM) if handle_sigint else (signal.SIGTERM,)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    async with running_hub(settings, consume=consume, reuse_port=reuse_port, ready_within=None) as (
        _,
        url,
    ):
        if announce:
            print(f"lienthong hub listening on {url} (Ctrl-C to stop)", flush=True)
        await stop.wait()
        log.info("stopping", extra={"timeout_seconds": settings.shutdown_timeout_seconds})
        last_resort = _exit_after(settings.shutdown_timeout_seconds)
    last_resort.cancel()
    log.info("stopped")


def _exit_after(seconds: float) -> threading.Timer:
    """A last resort: leave even if a clean stop hangs (a stuck connection, a stuck worker)."""

    def give_up() -> None:
        log.error("stopping took longer than %.0f s; exiting now", seconds)
        faulthandler.dump_traceback(all_threads=True)  # where it hung, for the operators
        logging.shutdown()
        os._exit(70)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()
    return timer


def _worker(settings: Settings, consume: bool, parent: int) -> None:
    from exchange.logs import setup_logging

    faulthandler.register(signal.SIGUSR1, all_threads=True)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the first process stops us with SIGTERM
    exit_with_parent(parent)
    setup_logging(settings.log_level)
    asyncio.run(
        serve_forever(
            settings, consume=consume, reuse_port=True, announce=False, handle_sigint=False
        )
    )
    _leave(0)


def _leave(code: int) -> None:
    """Exit now that the hub has stopped cleanly, without the interpreter's exit-time joins
    of pool processes (they can wait forever; the workers die with us anyway)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def serve_processes(settings: Settings, *, consume: bool = True, workers: int = 1) -> None:
    """Serve from ``workers`` processes sharing the port (SO_REUSEPORT); the kernel spreads the
    connections. The hubs coordinate through PostgreSQL (outbox claims, one ledger sequencer)
    and RabbitMQ (consumers share each queue). The others die with the first one. Returns
    only by exiting the process, once every hub has stopped."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1: where is it stuck
    if workers <= 1:
        asyncio.run(serve_forever(settings, consume=consume))
        _leave(0)
    if settings.port == 0:
        raise ValueError("several workers need a fixed port")
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(
            target=_worker, args=(settings, consume, os.getpid()), name=f"lienthong-{n}"
        )
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
        deadline = time.monotonic() + settings.shutdown_timeout_seconds + 5
        for child in children:
            child.join(max(0.0, deadline - time.monotonic()))
            if child.is_alive():
                child.kill()
                child.join(5)
    _leave(0)
