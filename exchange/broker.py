"""RabbitMQ topology and the two directions of travel: outbox → broker, broker → inbox.

Topology: one durable topic exchange ``<prefix>.packages``; one durable queue per agency,
``<prefix>.inbox.<organ id>`` (quorum by default), bound to the agency's routing key (its organ id
reversed, see :mod:`exchange.organ`). Messages carry a reference to the stored package, never the
package itself (claim check): the bytes stay where they were fsynced, once.

No loss: a delivery is written to the outbox in the same transaction as the package; the
:class:`Dispatcher` deletes the outbox row only after the broker confirmed the publish, and the
:class:`InboxWorker` acks a message only after the delivery is committed in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from datetime import UTC, datetime

import aio_pika
import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from exchange.config import Settings
from exchange.events import Event, record_events
from exchange.organ import OrganId
from exchange.packages import Outgoing
from exchange.tasks import BackgroundLoop

__all__ = ["Broker", "Dispatcher", "InboxWorker"]

log = logging.getLogger("lienthong.broker")
PUBLISH_CHANNELS = 4


class Broker:
    """A connection, a confirming publisher channel, a consumer channel, and declared queues."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.exchange_name = f"{settings.broker_prefix}.packages"
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._publishers: itertools.cycle | None = None
        self._consume_channel: aio_pika.abc.AbstractChannel | None = None
        self._declared: dict[str, aio_pika.abc.AbstractQueue] = {}
        self._consumers: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self.on_message = None  # set by InboxWorker

    def queue_name(self, organ_id: str) -> str:
        return f"{self.settings.broker_prefix}.inbox.{organ_id}"

    async def connect(self) -> None:
        self._connection = await aio_pika.connect_robust(self.settings.amqp_url)
        # Several confirming channels: a channel writes one publish at a time.
        exchanges = []
        for _ in range(PUBLISH_CHANNELS):
            channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            exchanges.append(
                await channel.declare_exchange(
                    self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
                )
            )
        self._publishers = itertools.cycle(exchanges)
        self._consume_channel = await self._connection.channel()
        await self._consume_channel.set_qos(prefetch_count=self.settings.consumer_prefetch)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def ensure_agency(self, organ_id: str) -> None:
        """Declare the agency's queue and binding (idempotent) and consume it if we consume."""
        if organ_id in self._declared and (self.on_message is None or organ_id in self._consumers):
            return
        async with self._lock:
            queue = self._declared.get(organ_id)
            if queue is None:
                assert self._consume_channel is not None, "connect() first"
                queue = await self._consume_channel.declare_queue(
                    self.queue_name(organ_id),
                    durable=True,
                    arguments={"x-queue-type": self.settings.queue_type},
                )
                await queue.bind(self.exchange_name, OrganId.parse(organ_id).routing_key)
                self._declared[organ_id] = queue
            if self.on_message is not None and organ_id not in self._consumers:
                self._consumers[organ_id] = await queue.consume(self.on_message)

    async def publish(self, outgoing: Outgoing) -> None:
        """Publish one delivery reference and wait for the broker's confirm."""
        assert self._publishers is not None, "connect() first"
        await self.ensure_agency(outgoing.recipient)
        body = json.dumps(
            {
                "delivery_id": outgoing.delivery_id,
                "package_id": str(outgoing.package_id),
                "recipient": outgoing.recipient,
            }
        ).encode()
        await next(self._publishers).publish(
            aio_pika.Message(
                body,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=str(outgoing.delivery_id),
            ),
            routing_key=outgoing.routing_key,
            mandatory=True,
        )

    async def delete_topology(self, organ_ids: list[str]) -> None:
        """Remove queues and the exchange (tests and `lienthong broker reset`)."""
        assert self._connection is not None
        channel = await self._connection.channel()
        for organ_id in organ_ids:
            with contextlib.suppress(Exception):
                await channel.queue_delete(self.queue_name(organ_id))
        with contextlib.suppress(Exception):
            await channel.exchange_delete(self.exchange_name)
        await channel.close()


class Dispatcher(BackgroundLoop):
    """Publishes outbox rows: new ones at once, forgotten ones (crash, broker down) on retry."""

    task_name = "outbox-dispatcher"

    def __init__(self, pool: asyncpg.Pool, broker: Broker, settings: Settings) -> None:
        self._pool = pool
        self._broker = broker
        self._retry = settings.outbox_retry_seconds
        self._queue: asyncio.Queue[Outgoing] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def submit(self, outgoing: tuple[Outgoing, ...]) -> None:
        """Hand over deliveries just committed to the outbox."""
        for item in outgoing:
            self._queue.put_nowait(item)

    async def _run(self) -> None:
        # A few publishers at once: one batch's confirms and bookkeeping need not hold the next.
        # The relay has its own timer, so retries happen under steady traffic too.
        await asyncio.gather(self._relay(), *(self._publisher() for _ in range(PUBLISH_CHANNELS)))

    async def _relay(self) -> None:
        while True:
            await asyncio.sleep(self._retry / 2)
            try:
                while batch := await self.claim_due():
                    await self._publish(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; it tries again")

    async def _publisher(self) -> None:
        while True:
            try:
                batch = await self._next_batch()
                if batch:
                    await self._publish(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox dispatch failed; rows stay in the outbox for a retry")
                await asyncio.sleep(1.0)

    async def _next_batch(self) -> list[Outgoing]:
        batch = [await self._queue.get()]
        while not self._queue.empty() and len(batch) < 500:
            batch.append(self._queue.get_nowait())
        return batch

    async def claim_due(self, limit: int = 500) -> list[Outgoing]:
        """Rows whose publish was never confirmed, claimed so no other hub sends them too."""
        rows = await self._pool.fetch(
            """
            UPDATE outbox o SET attempts = o.attempts + 1,
                next_attempt_at = now() + make_interval(secs => least(300, $1 * 2 ^ o.attempts))
            FROM deliveries d JOIN packages p ON p.id = d.package_id
            WHERE d.id = o.delivery_id AND o.delivery_id IN (
                SELECT delivery_id FROM outbox WHERE next_attempt_at <= now()
                ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
            RETURNING o.delivery_id, d.package_id, d.recipient, o.routing_key, p.digest
            """,
            self._retry,
            limit,
        )
        return [Outgoing(*r) for r in rows]

    async def _publish(self, batch: list[Outgoing]) -> None:
        # 'routed' is stamped with the time of publishing: a consumer may record 'delivered'
        # before the confirm comes back and this transaction commits.
        published_at = datetime.now(UTC)
        results = await asyncio.gather(
            *(self._broker.publish(item) for item in batch), return_exceptions=True
        )
        confirmed = [item for item, res in zip(batch, results, strict=True) if res is None]
        for item, res in zip(batch, results, strict=True):
            if res is not None:
                log.warning(
                    "publish not confirmed; will retry",
                    extra={"package_id": str(item.package_id), "error": repr(res)},
                )
        if not confirmed:
            return
        async with self._pool.acquire() as conn, conn.transaction():
            # Only rows still there: the relay and the fast path may both have published one,
            # and 'routed' is recorded once.
            gone = await conn.fetch(
                "DELETE FROM outbox WHERE delivery_id = ANY($1::bigint[]) RETURNING delivery_id",
                [c.delivery_id for c in confirmed],
            )
            removed = {r["delivery_id"] for r in gone}
            await record_events(
                conn,
                [
                    Event(
                        "routed",
                        c.digest,
                        c.package_id,
                        c.recipient,
                        {"routing_key": c.routing_key},
                        published_at,
                    )
                    for c in confirmed
                    if c.delivery_id in removed
                ],
            )


class InboxWorker(BackgroundLoop):
    """Consumes agency queues and turns each message into a delivered inbox entry."""

    task_name = "inbox-worker"

    def __init__(self, pool: asyncpg.Pool, broker: Broker, batch_size: int = 200) -> None:
        self._pool = pool
        self._broker = broker
        self._batch_size = batch_size
        self._pending: list[AbstractIncomingMessage] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        broker.on_message = self._on_message

    async def consume(self, organ_ids: list[str]) -> None:
        """Start the worker and consume these agencies' queues."""
        self.start()
        for organ_id in organ_ids:
            await self._broker.ensure_agency(organ_id)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._pending.append(message)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self._batch_size]
                del self._pending[: len(batch)]
                try:
                    await self._deliver(batch)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # E.g. acking on a channel that closed: the broker redelivers those
                    # messages, and recording a delivery twice changes nothing.
                    log.exception("delivering a batch failed; the broker will redeliver it")

    async def _deliver(self, messages: list[AbstractIncomingMessage]) -> None:
        ids: list[int] = []
        good: list[AbstractIncomingMessage] = []
        for message in messages:
            try:
                ids.append(int(json.loads(message.body)["delivery_id"]))
                good.append(message)
            except (ValueError, KeyError, TypeError):
                log.error("dropping a message that is not a delivery reference")
                await message.reject(requeue=False)
        if not ids:
            return
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                # One delivering transaction at a time across hubs: inbox cursors then only grow.
                await conn.execute("SELECT pg_advisory_xact_lock(7214002)")
                rows = await conn.fetch(
                    """
                    UPDATE deliveries SET state = 'delivered', delivered_at = now(),
                        inbox_seq = nextval('inbox_seq')
                    FROM packages p
                    WHERE deliveries.id = ANY($1::bigint[]) AND deliveries.state = 'pending'
                      AND p.id = deliveries.package_id
                    RETURNING deliveries.package_id, deliveries.recipient, p.digest
                    """,
                    ids,
                )
                await record_events(
                    conn,
                    [
                        Event("delivered", r["digest"], r["package_id"], r["recipient"])
                        for r in rows
                    ],
                )
        except Exception:
            log.exception("recording deliveries failed; messages go back to the queue")
            await asyncio.sleep(0.5)
            for message in good:
                await message.nack(requeue=True)
            return
        await asyncio.gather(*(message.ack() for message in good))
