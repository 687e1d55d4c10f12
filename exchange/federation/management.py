"""RabbitMQ's own federation, configured through its management HTTP API.

Each hub owns a virtual host. In it, ``lienthong.federation.out`` is where the hub publishes
hand-overs and notes for other hubs, and ``lienthong.federation.in`` is a *federated* exchange:
a policy makes every configured upstream (one per peer: the peer's broker, the peer's ``out``
exchange) feed it. The hub binds its inbound queue to ``in`` with the routing keys it serves
(``H49.#``); the federation plugin propagates those bindings upstream, so a peer's broker
sends this hub only its subtree, and keeps what the link cannot carry yet in the upstream
queue (acknowledged only once this broker confirmed it: ``ack-mode on-confirm``).
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote, unquote

import aiohttp
from yarl import URL

from exchange.config import Settings
from exchange.errors import HubError

__all__ = [
    "INBOUND_QUEUE",
    "IN_EXCHANGE",
    "OUT_EXCHANGE",
    "Management",
    "vhost_of",
]

OUT_EXCHANGE = "lienthong.federation.out"
IN_EXCHANGE = "lienthong.federation.in"
INBOUND_QUEUE = "lienthong.federation.inbound"
POLICY = "lienthong-federation"


def vhost_of(amqp_url: str) -> str:
    """The virtual host an AMQP URL names ("/" when it names none)."""
    path = URL(amqp_url).raw_path
    return unquote(path[1:]) if len(path) > 1 else "/"


async def _rabbitmqctl_links() -> list[dict]:
    try:
        process = await asyncio.create_subprocess_exec(
            "rabbitmqctl",
            "-q",
            "federation_status",
            "--formatter",
            "json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(process.communicate(), 30)
        found = json.loads(out or b"[]")
    except (OSError, TimeoutError, ValueError) as exc:
        raise HubError(
            "federation.management_failed",
            f"no federation link status: neither rabbitmq_federation_management nor rabbitmqctl "
            f"answered ({type(exc).__name__})",
        ) from None
    return found if isinstance(found, list) else []


class Management:
    """The few management API calls federation needs, for this hub's virtual host."""

    def __init__(self, settings: Settings) -> None:
        base = URL(settings.federation_management_url)
        amqp = URL(settings.amqp_url)
        self.base = base.with_user(None)
        user, password = (
            base.user or amqp.user or "guest",
            base.password or amqp.password or "guest",
        )
        self._headers = {"Authorization": aiohttp.encode_basic_auth(user, password)}
        self.vhost = vhost_of(settings.amqp_url)

    def _url(self, *parts: str) -> str:
        return str(self.base).rstrip("/") + "/api/" + "/".join(quote(p, safe="") for p in parts)

    async def _call(self, method: str, *parts: str, body: object = None) -> object:
        try:
            async with (
                aiohttp.ClientSession(
                    headers=self._headers, timeout=aiohttp.ClientTimeout(total=15)
                ) as session,
                session.request(method, self._url(*parts), json=body) as response,
            ):
                if response.status == 404 and method in ("GET", "DELETE"):
                    return None
                if response.status >= 300:
                    text = (await response.text())[:300]
                    raise HubError(
                        "federation.management_failed",
                        f"RabbitMQ management {method} {'/'.join(parts[:1])}: "
                        f"{response.status} {text}",
                    )
                if response.content_type == "application/json":
                    return await response.json()
                return None
        except aiohttp.ClientError as exc:
            raise HubError(
                "federation.management_failed",
                f"RabbitMQ management API at {self.base} unreachable ({type(exc).__name__}); "
                "is rabbitmq_management enabled?",
            ) from None

    async def set_upstream(self, peer: str, amqp_url: str) -> None:
        """Define (or redefine) the upstream of ``peer`` and the policy federating ``in``."""
        await self._call(
            "PUT",
            "parameters",
            "federation-upstream",
            self.vhost,
            peer,
            body={
                "value": {
                    "uri": amqp_url,
                    "exchange": OUT_EXCHANGE,
                    "ack-mode": "on-confirm",
                    "trust-user-id": False,
                    "max-hops": 1,
                    "reconnect-delay": 2,
                }
            },
        )
        await self._call(
            "PUT",
            "policies",
            self.vhost,
            POLICY,
            body={
                "pattern": "^" + IN_EXCHANGE.replace(".", r"\.") + "$",
                "definition": {"federation-upstream-set": "all"},
                "apply-to": "exchanges",
                "priority": 10,
            },
        )

    async def remove_upstream(self, peer: str) -> None:
        await self._call("DELETE", "parameters", "federation-upstream", self.vhost, peer)

    async def links(self) -> list[dict]:
        """The federation links of this virtual host, as the plugin reports them: from the
        management API when rabbitmq_federation_management is enabled, otherwise from
        ``rabbitmqctl federation_status`` (a broker on this machine)."""
        found = await self._call("GET", "federation-links", self.vhost)
        if found is None:
            found = await _rabbitmqctl_links()
        return [link for link in found if link.get("vhost") in (None, self.vhost)]

    async def create_vhost(self, name: str, user: str = "guest") -> None:
        """A virtual host with full permissions for ``user`` (tests and the demo)."""
        await self._call("PUT", "vhosts", name, body={})
        await self._call(
            "PUT", "permissions", name, user, body={"configure": ".*", "write": ".*", "read": ".*"}
        )

    async def delete_vhost(self, name: str) -> None:
        await self._call("DELETE", "vhosts", name)
