"""RabbitMQ topology and the two directions of travel: outbox → broker, broker → inbox.

Topology: one durable topic exchange ``<prefix>.packages``; one durable queue per agency,
``<prefix>.inbox.<organ id>`` (quorum by default), bound to the agency's routing key (its organ id
reversed, see :mod:`exchange.organ`). Messages carry a reference to the stored package, never the
package itself (claim check): the bytes stay where they were fsynced, once.

No loss, whatever the broker's redelivery policy:

* a delivery is written to the outbox in the same transaction as the package; the
  :class:`Dispatcher` deletes the outbox row only after the broker confirmed the publish, and
  re-publishes what stays unconfirmed; after a (re)connection it publishes the backlog at once;
* the :class:`InboxWorker` acks a message only after the delivery is committed in PostgreSQL;
  while PostgreSQL is unreachable it holds what it has and stops consuming (back-pressure), so
  messages are not bounced back and forth against the queue's delivery limit;
* each quorum queue declares an explicit delivery limit and dead-letters, at least once, to
  ``<prefix>.dead-letters``, which the hub consumes like any inbox queue;
* a reconciler re-publishes deliveries routed long ago but never delivered (a message the broker
  dropped or dead-lettered nowhere): consumers are idempotent, so a second copy is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aio_pika
import aiormq
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from yarl import URL

from exchange.config import Settings
from exchange.delivery import Deliveries
from exchange.ports import Outgoing
from exchange.store.database import unavailable
from exchange.store.postgres import PostgresPackages
from exchange.tasks import BackgroundLoop, log_failure
from schemas import OrganId

__all__ = ["Broker", "Dispatcher", "InboxWorker"]

log = logging.getLogger("lienthong.broker")
PUBLISH_CHANNELS = 4
_BACKOFF_MAX = 30.0


async def connect_with_backoff(
    settings: Settings,
    adopt: Callable[[aio_pika.abc.AbstractRobustConnection], None],
    set_up: Callable[[aio_pika.abc.AbstractRobustConnection], Awaitable[None]],
    close: Callable[[], Awaitable[None]],
    failure: str,
    logger: logging.Logger = log,
) -> aio_pika.abc.AbstractRobustConnection:
    """A robust connection to ``settings.amqp_url`` with ``set_up`` done on it, retrying with
    backoff (each failure logged as ``failure``) for as long as it takes. ``adopt`` receives
    each connection before it connects, so that ``close`` can stop it even while it waits."""
    delay = 0.5
    while True:
        connection = aio_pika.RobustConnection(
            URL(settings.amqp_url), reconnect_interval=settings.broker_reconnect_seconds
        )
        adopt(connection)
        try:
            await connection.connect(timeout=10)
            await set_up(connection)
            return connection
        except asyncio.CancelledError:
            await close()
            raise
        except Exception as exc:
            logger.warning(
                failure, extra={"error": f"{type(exc).__name__}: {exc}", "retry_in": delay}
            )
            await close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


class Broker:
    """A robust connection, confirming publisher channels, a consumer channel, and the queues."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.exchange_name = f"{settings.broker_prefix}.packages"
        self.dead_letter_exchange = f"{settings.broker_prefix}.dead"
        self.dead_letter_queue = f"{settings.broker_prefix}.dead-letters"
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._publishers: itertools.cycle | None = None
        self._declare_channel: aio_pika.abc.AbstractChannel | None = None
        self._consume_channel: aio_pika.abc.AbstractChannel | None = None
        self._declared: dict[str, AbstractQueue] = {}  # queue name -> queue (consume channel)
        self._consumers: dict[str, str] = {}  # queue name -> consumer tag
        self._paused = False
        self._lock = asyncio.Lock()
        self.on_message = None  # set by InboxWorker
        self.on_reconnect: list[Callable[[], None]] = []  # called after every reconnection

    def queue_name(self, organ_id: str) -> str:
        return f"{self.settings.broker_prefix}.inbox.{organ_id}"

    @property
    def ready(self) -> bool:
        """Connected now, with the exchanges declared."""
        return (
            self._publishers is not None
            and self._connection is not None
            and self._connection.connected.is_set()
        )

    async def connect(self) -> None:
        """Connect and declare the exchanges, retrying with backoff (each failure logged) for
        as long as it takes.

        Once connected the connection is robust: after a broker restart it reconnects by itself
        and restores channels, queues, bindings and consumers; ``on_reconnect`` hooks run then.
        """

        def adopt(connection: aio_pika.abc.AbstractRobustConnection) -> None:
            self._connection = connection

        connection = await connect_with_backoff(
            self.settings,
            adopt,
            lambda _: self._set_up(),
            self.close,
            "the broker cannot be reached or refused the hub's set-up; retrying",
        )
        connection.reconnect_callbacks.add(self._reconnected)
        connection.close_callbacks.add(self._lost)
        log.info("connected to the broker")

    async def _set_up(self) -> None:
        # Several confirming channels: a channel writes one publish at a time.
        exchanges = []
        for _ in range(PUBLISH_CHANNELS):
            channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            exchanges.append(
                await channel.declare_exchange(
                    self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
                )
            )
        self._declare_channel = await self._connection.channel()
        await self._declare_channel.declare_exchange(
            self.dead_letter_exchange, aio_pika.ExchangeType.FANOUT, durable=True
        )
        self._consume_channel = await self._connection.channel()
        await self._consume_channel.set_qos(prefetch_count=self.settings.consumer_prefetch)
        self._publishers = itertools.cycle(exchanges)

    def _lost(self, _connection: object, reason: object = None) -> None:
        if self._connection is not None and not self._connection.is_closed:
            log.warning(
                "lost the connection to the broker; reconnecting",
                extra={
                    "error": repr(reason),
                    "every_seconds": self.settings.broker_reconnect_seconds,
                },
            )

    def _reconnected(self, *_: object) -> None:
        log.info("reconnected to the broker")
        for hook in self.on_reconnect:
            hook()

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection, self._publishers = self._connection, None, None
            with contextlib.suppress(Exception):
                await connection.close()

    def _arguments(self, dead_letters: bool = False) -> dict:
        """Queue arguments: an agency's queue dead-letters, the dead-letter queue does not
        (a message it cannot take would come straight back to it)."""
        arguments: dict = {"x-queue-type": self.settings.queue_type}
        if dead_letters:
            return arguments
        arguments["x-dead-letter-exchange"] = self.dead_letter_exchange
        if self.settings.queue_type == "quorum":
            # An explicit limit (RabbitMQ 4 has a default of 20 anyway), dead-lettered at least
            # once: a message over the limit moves to the dead-letter queue, never into the void.
            arguments |= {
                "x-delivery-limit": self.settings.delivery_limit,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            }
        return arguments

    async def _declare(self, name: str, routing_key: str | None) -> AbstractQueue:
        """Declare (on the declaring channel, which an argument clash may close) and bind."""
        assert self._declare_channel is not None and self._consume_channel is not None
        try:
            queue = await self._declare_channel.declare_queue(
                name, durable=True, arguments=self._arguments(dead_letters=routing_key is None)
            )
        except aiormq.exceptions.ChannelPreconditionFailed:
            # Declared earlier with other arguments (an older hub): keep it and say what to do.
            log.warning(
                "queue %s exists with other arguments; it is used as it is: give it a "
                "delivery-limit and dead-letter-exchange by policy",
                name,
            )
            self._declare_channel = await self._connection.channel()
            queue = await self._declare_channel.declare_queue(name, passive=True)
        if routing_key is None:
            await queue.bind(self.dead_letter_exchange)
        else:
            await queue.bind(self.exchange_name, routing_key)
        return await self._consume_channel.declare_queue(name, passive=True)

    async def ensure_agency(self, organ_id: str) -> None:
        """Declare the agency's queue and binding (idempotent) and consume it if we consume."""
        await self._ensure(self.queue_name(organ_id), OrganId.parse(organ_id).routing_key)

    async def ensure_dead_letters(self) -> None:
        """Declare the dead-letter queue and consume it like an inbox (if we consume)."""
        await self._ensure(self.dead_letter_queue, None)

    async def _ensure(self, name: str, routing_key: str | None) -> None:
        if name in self._declared and (self.on_message is None or name in self._consumers):
            return
        async with self._lock:
            queue = self._declared.get(name)
            if queue is None:
                queue = await self._declare(name, routing_key)
                self._declared[name] = queue
            if self.on_message is not None and name not in self._consumers and not self._paused:
                self._consumers[name] = await queue.consume(self.on_message)

    async def pause_consuming(self) -> None:
        """Cancel every consumer: no new deliveries arrive; unacked ones stay with us."""
        async with self._lock:
            self._paused = True
            consumers, self._consumers = self._consumers, {}
            for name, tag in consumers.items():
                with contextlib.suppress(Exception):
                    await self._declared[name].cancel(tag)

    async def resume_consuming(self) -> None:
        """Consume every declared queue again."""
        async with self._lock:
            self._paused = False
            if self.on_message is None:
                return
            for name, queue in self._declared.items():
                if name not in self._consumers:
                    self._consumers[name] = await queue.consume(self.on_message)

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
        """Remove queues and the exchanges (tests and `lienthong broker reset`)."""
        assert self._connection is not None
        channel = await self._connection.channel()
        names = [self.queue_name(o) for o in organ_ids] + [self.dead_letter_queue]
        for name in names:
            with contextlib.suppress(Exception):
                await channel.queue_delete(name)
        for exchange in (self.exchange_name, self.dead_letter_exchange):
            with contextlib.suppress(Exception):
                await channel.exchange_delete(exchange)
        await channel.close()


class Dispatcher(BackgroundLoop):
    """Publishes outbox rows: new ones at once, forgotten ones (crash, broker down) on retry,
    the whole backlog as soon as the broker is back; and re-publishes lost deliveries."""

    task_name = "outbox-dispatcher"

    def __init__(self, outbox: PostgresPackages, broker: Broker, settings: Settings) -> None:
        self._outbox = outbox
        self._broker = broker
        self._retry = settings.outbox_retry_seconds
        self._redeliver_after = settings.redeliver_after_seconds
        self._reconcile_every = settings.reconcile_interval_seconds
        self._queue: asyncio.Queue[Outgoing] = asyncio.Queue()
        self._kick = asyncio.Event()
        self._flush = False
        self._task: asyncio.Task | None = None
        broker.on_reconnect.append(self.flush)

    def submit(self, outgoing: tuple[Outgoing, ...]) -> None:
        """Hand over deliveries just committed to the outbox."""
        for item in outgoing:
            self._queue.put_nowait(item)

    def flush(self) -> None:
        """Publish the whole backlog now (the broker is back)."""
        self._flush = True
        self._kick.set()

    async def _run(self) -> None:
        # A few publishers at once: one batch's confirms and bookkeeping need not hold the next.
        # The relay has its own timer, so retries happen under steady traffic too.
        await asyncio.gather(
            self._relay(),
            self._reconciler(),
            *(self._publisher() for _ in range(PUBLISH_CHANNELS)),
        )

    async def _relay(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self._retry / 2)
            self._kick.clear()
            if not self._broker.ready:
                continue  # nothing is claimed, so no row's backoff grows during an outage
            try:
                if self._flush:
                    self._flush = False
                    await self._outbox.due_now()
                while self._broker.ready and (batch := await self.claim_due()):
                    await self._publish(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log_failure(log, "outbox relay failed; it tries again", exc)

    async def _publisher(self) -> None:
        while True:
            batch = await self._next_batch()
            if not self._broker.ready:
                continue  # the rows wait in the outbox; the relay sends them once it is back
            try:
                await self._publish(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log_failure(log, "outbox dispatch failed; rows stay in the outbox for a retry", exc)
                await asyncio.sleep(1.0)

    async def _next_batch(self) -> list[Outgoing]:
        batch = [await self._queue.get()]
        while not self._queue.empty() and len(batch) < 500:
            batch.append(self._queue.get_nowait())
        return batch

    async def claim_due(self, limit: int = 500) -> list[Outgoing]:
        """Rows whose publish was never confirmed, claimed so no other hub sends them too."""
        return await self._outbox.claim_due(self._retry, limit)

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
        if confirmed:
            await self._outbox.confirm_published(confirmed, published_at)

    async def _reconciler(self) -> None:
        while True:
            await asyncio.sleep(self._reconcile_every)
            try:
                found = await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log_failure(log, "reconciling lost deliveries failed; it tries again", exc)
                continue
            if found:
                log.warning(
                    "re-publishing deliveries routed but never delivered",
                    extra={"count": found, "after_seconds": self._redeliver_after},
                )
                self._kick.set()

    async def reconcile(self) -> int:
        """Put back in the outbox every delivery routed more than ``redeliver_after_seconds``
        ago and still not delivered; returns how many."""
        return await self._outbox.reconcile(self._redeliver_after)


class InboxWorker(BackgroundLoop):
    """Consumes agency queues (and the dead letters) and turns each message into a delivered
    inbox entry."""

    task_name = "inbox-worker"

    def __init__(self, deliveries: Deliveries, broker: Broker, batch_size: int = 200) -> None:
        self._deliveries = deliveries
        self._broker = broker
        self._batch_size = batch_size
        self._pending: list[AbstractIncomingMessage] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._held = 0  # messages held while PostgreSQL is unreachable

    @property
    def waiting(self) -> int:
        """Messages received and not yet recorded (held while PostgreSQL is unreachable)."""
        return self._held + len(self._pending)

    async def consume(self, organ_ids: list[str]) -> None:
        """Start the worker and consume these agencies' queues and the dead letters."""
        if self._task is None:
            self._broker.on_message = self._on_message
            self.start()
        await self._broker.ensure_dead_letters()
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
                    log.exception("delivering a batch failed; the broker will redeliver it")

    async def _deliver(self, messages: list[AbstractIncomingMessage]) -> None:
        ids: list[int] = []
        good: list[AbstractIncomingMessage] = []
        for message in messages:
            delivery_id = _delivery_id(message.body)
            if delivery_id is None:
                # Not a delivery reference: nothing to deliver, so nothing is lost by dropping
                # it (acked, not rejected: a rejection would only dead-letter it again).
                log.error(
                    "dropping a message that is not a delivery reference",
                    extra={"message_id": message.message_id, "size": len(message.body)},
                )
                with contextlib.suppress(Exception):
                    await message.ack()
                continue
            ids.append(delivery_id)
            good.append(message)
        if ids:
            await self._record_until_done(ids)
        results = await asyncio.gather(*(m.ack() for m in good), return_exceptions=True)
        if any(isinstance(r, Exception) for r in results):
            # The channel closed meanwhile: the broker redelivers, and recording a delivery
            # twice changes nothing.
            log.info("some acks were lost with their channel; the broker redelivers them")

    async def _record_until_done(self, ids: list[int]) -> None:
        """Record the deliveries. While PostgreSQL is unreachable, hold the messages (unacked,
        so the broker counts no redelivery) and stop consuming until it answers again; any
        other failure is a refused row, recorded one by one so the others go through."""
        delay, paused = 0.5, False
        while True:
            try:
                await self._deliveries.deliver(ids)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not unavailable(exc):
                    await self._record_one_by_one(ids)
                    break
                if not paused:
                    self._held = len(ids)
                    log.warning(
                        "cannot record deliveries; holding them and pausing consumption",
                        extra={"held": len(ids), "error": f"{type(exc).__name__}: {exc}"},
                    )
                    with contextlib.suppress(Exception):
                        await self._broker.pause_consuming()
                    paused = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
        self._held = 0
        if paused:
            log.info("deliveries recorded again; consuming resumes")
            try:
                await self._broker.resume_consuming()
            except Exception as exc:  # the broker's own reconnection restores consumers
                log_failure(log, "resuming consumers failed", exc)

    async def _record_one_by_one(self, ids: list[int]) -> None:
        for delivery_id in ids:
            try:
                await self._deliveries.deliver([delivery_id])
            except Exception as exc:  # its row refuses it; the reconciler tries it again later
                log.error(
                    "a delivery could not be recorded",
                    extra={"delivery_id": delivery_id, "error": f"{type(exc).__name__}: {exc}"},
                )


_MAX_ID = 2**63 - 1


def _delivery_id(body: bytes) -> int | None:
    """The delivery id a message names, or None when it is not a delivery reference."""
    try:
        value = json.loads(body)["delivery_id"]
    except Exception:  # noqa: BLE001 (any malformed body is just not a reference)
        return None
    if type(value) is not int or not 0 < value <= _MAX_ID:
        return None
    return value
