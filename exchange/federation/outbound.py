"""Routing across hubs: the dispatcher's publisher, federated.

A delivery for an agency served here goes to the hub's own exchange as always. A delivery for
an agency served by another hub becomes a hand-over (claim check) published on the federated
``out`` exchange with the agency's routing key; the peer whose bindings take that key fetches
the bytes. The outbox row is deleted only after the broker confirmed the publish, as for a
local delivery; a hand-over no peer takes is returned (``mandatory``) and stays in the outbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from exchange.broker import Broker
from exchange.federation.link import Link
from exchange.federation.messages import Handover, now_iso
from exchange.ports import Outgoing
from exchange.store.federation import PostgresFederation

__all__ = ["FederatedPublisher"]

_HOME_TTL = 5.0  # seconds a home-hub look-up is reused


class FederatedPublisher:
    """What :class:`~exchange.broker.Dispatcher` publishes through when the hub federates."""

    def __init__(self, hub_id: str, broker: Broker, link: Link, store: PostgresFederation) -> None:
        self.hub_id = hub_id
        self._broker = broker
        self._link = link
        self._store = store
        self._homes: dict[str, tuple[float, str | None]] = {}

    @property
    def ready(self) -> bool:
        return self._broker.ready

    @property
    def on_reconnect(self) -> list[Callable[[], None]]:
        return self._broker.on_reconnect

    async def home_of(self, organ_id: str) -> str | None:
        """The hub serving ``organ_id`` when it is not this one."""
        cached = self._homes.get(organ_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        home = (await self._store.homes([organ_id])).get(organ_id)
        if len(self._homes) > 50_000:
            self._homes.clear()
        self._homes[organ_id] = (time.monotonic() + _HOME_TTL, home)
        return home

    async def publish(self, outgoing: Outgoing) -> None:
        """Publish one delivery (locally or as a hand-over) and wait for the confirm."""
        if await self.home_of(outgoing.recipient) is None:
            await self._broker.publish(outgoing)
            return
        row = await self._store.package_by_digest(outgoing.digest)
        hops = list(row["arrival"]["hops"]) if row and row["arrival"] else []
        handover = Handover(
            outgoing.digest,
            row["sender"],
            outgoing.recipient,
            self.hub_id,
            tuple([*hops, {"hub": self.hub_id, "at": now_iso()}]),
        )
        await self._link.publish(
            handover.to_bytes(),
            outgoing.routing_key,
            f"{outgoing.digest.hex()}:{outgoing.recipient}",
            mandatory=True,
        )
