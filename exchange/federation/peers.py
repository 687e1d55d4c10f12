"""Peer hubs: adding one (its broker as an upstream of ours, its API, its pinned certificate),
listing, removing, and the status of each link.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from yarl import URL

from exchange.clientcerts import fingerprint
from exchange.config import Settings
from exchange.errors import HubError
from exchange.federation.management import Management
from exchange.federation.messages import check_hub_id
from exchange.federation.peerhttp import PeerClient
from exchange.sealing import SecretBox
from exchange.store.federation import PostgresFederation

__all__ = ["Peers", "PeerStatus"]


def _context(hub_id: str) -> bytes:
    return b"federation-peer-amqp:" + hub_id.encode()


@dataclass(frozen=True)
class PeerStatus:
    """One link as an operator reads it."""

    hub_id: str
    http_url: str
    link: str  # the federation plugin's status of the link (running, starting, error, absent)
    backlog: int  # copies for agencies served by that hub still waiting for its answer
    last_error: str | None
    last_seen_at: str | None

    def to_json(self) -> dict:
        return self.__dict__.copy()


class Peers:
    """The peer table, the broker's upstreams, and clients for peers' APIs."""

    def __init__(self, settings: Settings, store: PostgresFederation, secrets: SecretBox) -> None:
        self.settings = settings
        self.store = store
        self.secrets = secrets
        self.management = Management(settings)
        self._clients: dict[tuple, PeerClient] = {}

    async def add(self, hub_id: str, amqp_url: str, http_url: str, cert: bytes) -> str:
        """Configure a peer; returns its certificate's SHA-256 (hex)."""
        check_hub_id(hub_id)
        if hub_id == self.settings.hub_id:
            raise HubError("federation.bad_peer", "a hub cannot be its own peer", field="hub_id")
        if URL(amqp_url).scheme not in ("amqp", "amqps"):
            raise HubError("federation.bad_peer", "--amqp must be an amqp:// URL", field="amqp")
        if URL(http_url).scheme != "https":
            raise HubError(
                "federation.bad_peer", "--http must be an https:// URL (mutual TLS)", field="http"
            )
        try:
            parsed = (
                x509.load_pem_x509_certificate(cert)
                if b"-----BEGIN" in cert
                else x509.load_der_x509_certificate(cert)
            )
        except ValueError as exc:
            raise HubError("certificate.invalid", f"not an X.509 certificate: {exc}") from None
        der = parsed.public_bytes(serialization.Encoding.DER)
        owner = await self.store.peer_by_certificate(fingerprint(der))
        if owner not in (None, hub_id):
            raise HubError("certificate.taken", f"this certificate is the peer {owner}'s")
        await self.management.set_upstream(hub_id, amqp_url)
        await self.store.add_peer(
            hub_id,
            self.secrets.seal(amqp_url.encode(), context=_context(hub_id)),
            http_url,
            der,
            fingerprint(der),
        )
        return fingerprint(der).hex()

    async def remove(self, hub_id: str) -> None:
        if not await self.store.remove_peer(hub_id):
            raise HubError("federation.unknown_peer", f"{hub_id} is not a peer of this hub")
        await self.management.remove_upstream(hub_id)

    async def client(self, hub_id: str) -> PeerClient:
        """A client for the peer's API (``federation.not_peer`` when it is not a peer)."""
        row = await self.store.peer(hub_id)
        if row is None:
            raise HubError("federation.not_peer", f"{hub_id} is not a peer of this hub")
        key = (hub_id, row["http_url"], bytes(row["cert_sha256"]))
        client = self._clients.get(key)
        if client is None:  # new, or the peer's address or certificate changed
            for old in [k for k in self._clients if k[0] == hub_id]:
                await self._clients.pop(old).close()
            client = self._clients[key] = PeerClient(
                self.settings, hub_id, row["http_url"], row["cert_der"]
            )
        return client

    async def close(self) -> None:
        """Close the connections to every peer."""
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    def amqp_url(self, row) -> str:
        """The peer's broker URL (unsealed) from its row."""
        return self.secrets.open(row["amqp_sealed"], context=_context(row["hub_id"])).decode()

    async def listing(self) -> list[dict]:
        """Peers without secrets: id, API, certificate fingerprint, when added."""
        return [
            {
                "hub_id": r["hub_id"],
                "http_url": r["http_url"],
                "amqp": _without_password(self.amqp_url(r)),
                "cert_sha256": r["cert_sha256"].hex(),
                "added_at": r["added_at"].isoformat(),
            }
            for r in await self.store.peers()
        ]

    async def status(self) -> list[PeerStatus]:
        """Each link: the plugin's view, our backlog towards it, its last error."""
        try:
            links = {link.get("upstream"): link for link in await self.management.links()}
            unreachable = None
        except HubError as exc:
            links, unreachable = {}, exc.message
        backlog = await self.store.backlog()
        result = []
        for row in await self.store.peers():
            link = links.get(row["hub_id"], {})
            error = link.get("error") or row["last_error"] or unreachable
            result.append(
                PeerStatus(
                    row["hub_id"],
                    row["http_url"],
                    link.get("status", "unknown" if unreachable else "absent"),
                    backlog.get(row["hub_id"], 0),
                    str(error) if error else None,
                    row["last_seen_at"].isoformat() if row["last_seen_at"] else None,
                )
            )
        return result


def _without_password(url: str) -> str:
    parsed = URL(url)
    return str(parsed.with_password("***")) if parsed.password else url
