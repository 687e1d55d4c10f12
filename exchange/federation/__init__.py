"""Federation: hubs (national, provincial) exchanging what crosses their borders over
RabbitMQ's federation plugin, each keeping its own proof.

* :mod:`.management` configures upstreams and the federation policy (management HTTP API);
* :mod:`.link` is this hub's end of the federated exchanges;
* :mod:`.outbound` turns deliveries for agencies served elsewhere into hand-overs;
* :mod:`.intake` takes hand-overs (claim check fetched over mutual TLS, digest checked) and
  notes; :mod:`.reporter` sends notes back; :mod:`.witness` countersigns peers' heads;
* :mod:`.peers` is the peer table and link status; :mod:`.handlers` the HTTP side.

:class:`Federation` wires them for one hub (built by :class:`exchange.hub.Hub` when
``hub_id`` is set).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from exchange.broker import Broker
from exchange.config import Settings
from exchange.errors import HubError
from exchange.federation.intake import Intake, TryLater
from exchange.federation.link import Link
from exchange.federation.messages import Handover, parse_message
from exchange.federation.outbound import FederatedPublisher
from exchange.federation.peers import Peers
from exchange.federation.reporter import Reporter
from exchange.federation.witness import Witness
from exchange.sealing import SecretBox
from exchange.store.database import unavailable
from exchange.store.federation import PostgresFederation
from schemas import FormatError

if TYPE_CHECKING:
    from exchange.hub import Hub

__all__ = ["Federation"]

log = logging.getLogger("lienthong.federation")
_PREFETCH = 16
# Attempts (about two minutes) before a message goes back to the end of the queue (a peer or the
# database away) or, after an unexpected failure, is dropped with an error.
_MAX_ATTEMPTS = 8


class Federation:
    """The federation side of one hub."""

    def __init__(
        self, settings: Settings, pool: asyncpg.Pool, broker: Broker, secrets: SecretBox
    ) -> None:
        self.settings = settings
        self.hub_id = settings.hub_id
        self.store = PostgresFederation(pool)
        self.peers = Peers(settings, self.store, secrets)
        self.link = Link(settings)
        self.publisher = FederatedPublisher(self.hub_id, broker, self.link, self.store)
        self.intake: Intake | None = None
        self.reporter: Reporter | None = None
        self.witness: Witness | None = None
        self._handling: set[asyncio.Task] = set()
        self._task: asyncio.Task | None = None

    def wire(self, hub: Hub) -> None:
        """Connect to the rest of the hub (called once the hub has built its parts)."""
        self.intake = Intake(
            self.hub_id,
            store=self.store,
            peers=self.peers,
            link=self.link,
            blobs=hub.blobs,
            inspector=hub.inspector,
            policy=hub.submissions.policy,
            registry=hub.registry,
            packages=hub.packages,
            deliveries=hub.deliveries,
            publisher=hub.dispatcher,
            receipts=hub.receipts,
            retry_after=self.settings.outbox_retry_seconds,
        )
        self.reporter = Reporter(self.hub_id, self.store, self.link, hub.receipts)
        self.witness = Witness(
            self.hub_id,
            self.store,
            self.peers,
            hub.key,
            self.settings.federation_witness_interval_seconds,
        )

    def start(self, database_ready: asyncio.Event) -> None:
        self._task = asyncio.create_task(self._bring_up(database_ready), name="federation")

    async def _bring_up(self, database_ready: asyncio.Event) -> None:
        await database_ready.wait()
        await self.link.connect(self._on_message, _PREFETCH)
        self.reporter.start()
        self.witness.start()
        log.info("federation link up", extra={"hub_id": self.hub_id})

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for loop in (self.reporter, self.witness):
            if loop is not None:
                await loop.stop()
        for task in list(self._handling):
            task.cancel()
        await self.link.close()
        await self.peers.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.create_task(self._handle(message))
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        """Handle a message, acking it once it is stored or refused (and recorded)."""
        attempt = 0
        while True:
            try:
                parsed = parse_message(message.body)
                via = (message.headers or {}).get("x-received-from")
                if isinstance(parsed, Handover):
                    await self.intake.handover(parsed, via)
                else:
                    await self.intake.note(parsed, via)
                break
            except (HubError, FormatError) as exc:
                log.info("federation message refused", extra={"code": exc.code})
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                waiting = isinstance(exc, TryLater) or unavailable(exc)
                attempt += 1
                if attempt >= _MAX_ATTEMPTS:
                    if waiting:  # back of the queue: a peer that is away holds up no other
                        with contextlib.suppress(Exception):
                            await message.nack(requeue=True)
                        return
                    log.error("federation message dropped after repeated failures", exc_info=exc)
                    break
                log.warning(
                    "federation message kept for a retry",
                    extra={"error": f"{type(exc).__name__}: {exc}", "attempt": attempt},
                )
                await asyncio.sleep(min(0.5 * 2 ** min(attempt, 6), 30.0))
        with contextlib.suppress(Exception):
            await message.ack()
