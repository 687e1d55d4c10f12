"""Taking what peers send: hand-overs become stored packages, notes become trail events.

A hand-over is refused when it comes from a hub that is not a peer, when this hub already
appears among its hops (a loop), or when the bytes, once fetched, are not what it named or
fail this hub's own checks (the same reader, recipient checks and signature policy as a
package posted by an agency). Identical bytes arriving over another path are dropped by digest.
Each refusal goes into this hub's ledger and back to the sender's hub as a ``refused`` note.

An accepted package is stored with a copy for every recipient not already served by a hub on
its path (its own agencies, and those it hands on, hop by hop), with an ``arrived`` event
recording the hops; the note reporter tells the previous hub (see :mod:`.reporter`).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from yarl import URL

from exchange.delivery import Deliveries, choose_document
from exchange.errors import HubError
from exchange.events import Event
from exchange.federation.link import Link
from exchange.federation.messages import Handover, Note, now_iso
from exchange.federation.peers import Peers
from exchange.flows import settle
from exchange.policy import Policy
from exchange.ports import Publisher
from exchange.receipts import Receipts
from exchange.store.federation import PostgresFederation
from exchange.store.postgres import PostgresPackages
from exchange.store.registry import PostgresRegistry
from exchange.submission import new_package
from exchange.succession import route_recipients
from exchange.verification import Inspector
from schemas import FormatError, OrganId

__all__ = ["Intake", "TryLater"]

log = logging.getLogger("lienthong.federation")


class TryLater(Exception):
    """The message could not be handled now (peer or database away); it is kept."""


class Intake:
    """Handles one message from the inbound queue."""

    def __init__(
        self,
        hub_id: str,
        *,
        store: PostgresFederation,
        peers: Peers,
        link: Link,
        blobs,
        inspector: Inspector,
        policy: Policy,
        registry: PostgresRegistry,
        packages: PostgresPackages,
        deliveries: Deliveries,
        publisher: Publisher,
        receipts: Receipts,
        retry_after: float,
    ) -> None:
        self.hub_id = hub_id
        self.store = store
        self.peers = peers
        self.link = link
        self.blobs = blobs
        self.inspector = inspector
        self.policy = policy
        self.registry = registry
        self.packages = packages
        self.deliveries = deliveries
        self.publisher = publisher
        self.receipts = receipts
        self.retry_after = retry_after
        self.duplicates = 0  # hand-overs dropped because the bytes were already here

    # ----- hand-overs -------------------------------------------------------------------

    async def handover(self, handover: Handover, via: object) -> uuid.UUID | None:
        """Store the package a peer handed over; its id, or None when it was a duplicate.
        ``via``: the message's ``x-received-from`` header (which federation link brought it).
        Raises HubError (refused, recorded and answered) or TryLater."""
        try:
            return await self._take(handover, via)
        except (HubError, FormatError) as exc:
            await self._refuse(handover, exc.code, str(exc))
            raise

    async def _take(self, handover: Handover, via: object) -> uuid.UUID | None:
        if self.hub_id in handover.hubs():
            raise HubError(
                "federation.loop",
                f"hand-over came back to {self.hub_id} (hops: {', '.join(handover.hubs())})",
            )
        await self._check_peer(handover.from_hub, via)
        if not handover.hops or handover.hops[-1]["hub"] != handover.from_hub:
            raise HubError("federation.bad_message", "the last hop is not the sending hub")
        if await self.packages.digest_known(handover.digest):
            self.duplicates += 1
            log.info(
                "duplicate hand-over dropped",
                extra={"digest": handover.digest.hex(), "from_hub": handover.from_hub},
            )
            return None
        client = await self.peers.client(handover.from_hub)
        try:
            incoming = await client.fetch_package(self.blobs, handover.digest)
        except HubError as exc:
            if exc.code == "federation.fetch_failed":
                await self.store.peer_error(handover.from_hub, exc.message)
                raise TryLater(exc.message) from None
            raise
        try:
            return await self._store(handover, incoming)
        finally:
            incoming.discard()

    async def _store(self, handover: Handover, incoming) -> uuid.UUID | None:
        package, report = await self.inspector.inspect(
            incoming.path, handover.sender, handover.digest, verify=True
        )
        if package.sender.organ_id != handover.sender:
            raise HubError(
                "federation.sender_mismatch",
                f"the package is from {package.sender.organ_id}, the hand-over said "
                f"{handover.sender}",
            )
        verdict = await self.policy.judge(handover.sender, report) if report else None
        recipients = tuple(dict.fromkeys(p.organ_id for p in package.recipients))
        served_on_path = set(handover.hubs())
        homes = await self.store.homes(recipients)
        ours = tuple(r for r in recipients if homes.get(r) not in served_on_path)
        if handover.recipient not in ours:
            raise HubError(
                "federation.bad_message", f"{handover.recipient} is not a recipient this hub serves"
            )
        field = "To/OrganId" if package.kind == "edoc" else "ResponseFor/OrganId"
        today = dt.datetime.now(dt.UTC).date()
        # The sending hub routed by its registry; here a code must take documents as it is.
        await route_recipients(self.registry, ours, today, "refuse", field)
        package_id = uuid.uuid4()
        arrived = Event(
            "arrived",
            handover.digest,
            package_id,
            handover.sender,
            {"from_hub": handover.from_hub, "hops": list(handover.hops)},
        )
        new = new_package(
            package_id,
            package,
            handover.digest,
            incoming.size,
            ours,
            self.retry_after,
            verdict,
            events=(arrived,),
        )
        await incoming.keep()
        result = await self.packages.insert(new, choose_document, settle)
        if result.duplicate:  # the same bytes over another path, a moment earlier
            self.duplicates += 1
            return None
        self.publisher.submit(result.outgoing)
        await self.receipts.for_submission(result)  # signed now: the 'accepted' note carries it
        log.info(
            "hand-over accepted",
            extra={"package_id": str(result.id), "from_hub": handover.from_hub},
        )
        return result.id

    async def _refuse(self, handover: Handover, code: str, reason: str) -> None:
        """Record a refusal in the ledger and tell the sender's hub (a status-02-style note)."""
        log.warning(
            "hand-over refused",
            extra={"code": code, "from_hub": handover.from_hub, "digest": handover.digest.hex()},
        )
        detail = {"code": code, "reason": reason[:500], "from_hub": handover.from_hub}
        await self.packages.record_rejection(handover.sender, handover.digest, detail)
        if code in ("federation.not_peer", "federation.loop", "federation.bad_message"):
            return  # nobody on a legitimate path waits for this answer
        note = Note(
            handover.digest,
            "refused",
            self.hub_id,
            self.hub_id,
            handover.recipient,
            now_iso(),
            {"status": "02", **detail},
        )
        try:
            key = OrganId.parse(handover.sender).routing_key
            await self.link.publish(
                note.to_bytes(), key, f"refused:{handover.digest.hex()}", mandatory=False
            )
        except Exception as exc:  # the ledger has it; the sender's hub retries the hand-over
            log.warning("the refusal note could not be sent", extra={"error": repr(exc)})

    async def _check_peer(self, hub_id: str, via: object) -> None:
        """``hub_id`` must be a peer, and the message must have come over the federation link
        from that peer's broker (``x-received-from``, set by the plugin): a message published
        straight into this hub's exchange, or relayed from another broker, is not the peer's."""
        peer = await self.store.peer(hub_id)
        if peer is None:
            raise HubError("federation.not_peer", f"{hub_id} is not a peer of this hub")
        if not received_from(via, self.peers.amqp_url(peer)):
            raise HubError(
                "federation.not_peer", f"the message did not come over the link from {hub_id}"
            )

    # ----- notes ------------------------------------------------------------------------

    async def note(self, note: Note, via: object) -> bool:
        """Record what a peer tells about a package we hold; whether it was new."""
        await self._check_peer(note.from_hub, via)
        row = await self.store.package_by_digest(note.digest)
        if row is None:
            log.info("note about a package this hub does not hold", extra={"kind": note.kind})
            return False
        event = Event(
            "remote",
            note.digest,
            row["id"],
            note.organ_id or None,
            {
                "kind": note.kind,
                "hub": note.hub_id,
                "from_hub": note.from_hub,
                "at": note.at,
                **{k: v for k, v in note.detail.items() if k not in ("kind", "hub", "from_hub")},
            },
        )
        if note.kind == "accepted" and note.hub_id == note.from_hub:
            # The next hub took the package: our copies for what it serves are handed over.
            # Marked before the note is recorded (both are idempotent), so a trail that shows
            # the receipt also shows the copy delivered.
            ids = await self.store.remote_deliveries(row["id"], note.detail.get("recipients", []))
            if ids:
                await self.deliveries.deliver(ids)
        return await self.store.record_note(
            note.digest, note.hub_id, note.organ_id, note.kind, event
        )


def received_from(via: object, amqp_url: str) -> bool:
    """Whether the last hop of an ``x-received-from`` header is the broker of ``amqp_url``
    (the plugin records the upstream's URI without credentials)."""
    if not isinstance(via, list | tuple) or not via or not isinstance(via[-1], dict):
        return False
    uri = via[-1].get("uri")
    uri = uri.decode() if isinstance(uri, bytes) else uri
    if not isinstance(uri, str):
        return False
    got, want = URL(uri), URL(amqp_url)
    return (got.scheme, got.host, got.port, got.raw_path) == (
        want.scheme,
        want.host,
        want.port,
        want.raw_path,
    )
