"""Real network faults between the hub and a real service: a TCP proxy that can be cut or
frozen.

The hub under test connects to PostgreSQL or RabbitMQ through the proxy; ``cut()`` closes every
open connection and refuses new ones (the service looks down to the hub, and only to it: other
tests keep using the shared server), ``restore()`` lets connections through again.

    async with TcpProxy("127.0.0.1", 5432) as proxy:
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/lienthong_test"
        ...
        proxy.cut()
        ...
        proxy.restore()
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["TcpProxy"]


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target until cut."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connections = 0  # accepted while open, for assertions
        self._server: asyncio.Server | None = None
        self._open = True
        self._pipes: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()
        for task in list(self._pipes):
            task.cancel()

    def url(self, scheme_and_auth: str, path: str = "/") -> str:
        """``scheme_and_auth`` like ``postgresql://postgres@`` or ``amqp://guest:guest@``."""
        return f"{scheme_and_auth}127.0.0.1:{self.port}{path}"

    def cut(self) -> None:
        """Drop every connection now and refuse new ones (they are closed at once)."""
        self._open = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        """Let new connections through again (and frozen ones flow again)."""
        self._open = True
        self._flowing.set()

    def freeze(self) -> None:
        """Keep every connection open but carry nothing more: a host that stops answering."""
        self._flowing.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._open:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self._flowing.wait()
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(dst)
            dst.transport.abort()
