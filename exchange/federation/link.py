"""This hub's end of the federated exchanges, on its own robust AMQP connection.

Declares ``out`` (topic), ``in`` (topic, federated from every peer by policy, see
:mod:`exchange.federation.management`) and the inbound quorum queue bound to ``in`` with the
keys this hub serves; publishes with publisher confirms; consumes the inbound queue. After a
broker restart the connection, the declarations, the bindings and the consumer come back by
themselves (aio-pika's robust connection), and the plugin re-establishes the links.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from exchange.broker import connect_with_backoff
from exchange.config import Settings
from exchange.federation.management import IN_EXCHANGE, INBOUND_QUEUE, OUT_EXCHANGE

__all__ = ["Link"]

log = logging.getLogger("lienthong.federation")


class Link:
    """Publish to ``out``; consume what peers send us through ``in``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._out: aio_pika.abc.AbstractExchange | None = None
        self.connected = asyncio.Event()

    @property
    def ready(self) -> bool:
        return (
            self._out is not None
            and self._connection is not None
            and self._connection.connected.is_set()
        )

    async def connect(
        self, on_message: Callable[[AbstractIncomingMessage], Awaitable[None]], prefetch: int
    ) -> None:
        """Connect (retrying with backoff), declare, bind and consume."""

        def adopt(connection: aio_pika.abc.AbstractRobustConnection) -> None:
            self._connection = connection

        await connect_with_backoff(
            self.settings,
            adopt,
            lambda connection: self._declare(connection, on_message, prefetch),
            self.close,
            "federation: the broker cannot be reached; retrying",
            log,
        )
        self.connected.set()

    async def _declare(self, connection, on_message, prefetch: int) -> None:
        publishing = await connection.channel(publisher_confirms=True, on_return_raises=True)
        self._out = await publishing.declare_exchange(
            OUT_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        consuming = await connection.channel()
        await consuming.set_qos(prefetch_count=prefetch)
        inbound_exchange = await consuming.declare_exchange(
            IN_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await consuming.declare_queue(
            INBOUND_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
        )
        for key in self.settings.federation_bindings:
            await queue.bind(inbound_exchange, key)
        await queue.consume(on_message)

    async def publish(self, body: bytes, routing_key: str, message_id: str, *, mandatory: bool):
        """Publish on ``out`` and wait for the broker's confirm. ``mandatory``: a message no
        peer's binding takes is returned, and raises, instead of being dropped."""
        if self._out is None:
            raise ConnectionError("federation link not connected yet")
        await self._out.publish(
            aio_pika.Message(
                body,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message_id,
            ),
            routing_key=routing_key,
            mandatory=mandatory,
        )

    async def close(self) -> None:
        self.connected.clear()
        connection, self._connection, self._out = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()
