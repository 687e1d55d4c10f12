"""Several federated hubs on one machine (the federated demo, tests and the benchmark).

Each hub gets its own database schema, its own RabbitMQ virtual host on the local broker, a
development hub certificate (:mod:`.devpki`) and HTTPS with mutual TLS; the first hub listed
holds the directory, the others pull it; each listed link is configured on both sides through
the management API, exactly as ``lienthong federation peer add`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from yarl import URL

from exchange.config import Settings
from exchange.federation.devpki import make_hub_certificates
from exchange.federation.directory import pull_directory
from exchange.federation.management import Management
from exchange.http.serve import running_hub
from exchange.hub import Hub
from exchange.registry import Agency
from exchange.store import database as db

__all__ = ["HubSpec", "RunningHub", "federated_hubs", "wait_for_links"]


@dataclass(frozen=True)
class HubSpec:
    hub_id: str
    bindings: tuple[str, ...]  # routing keys it takes from peers
    agencies: tuple[Agency, ...]  # the agencies it serves
    broker: tuple[str, str] | None = None  # (AMQP URL, management URL); None: the settings'


@dataclass
class RunningHub:
    spec: HubSpec
    hub: Hub
    url: str
    settings: Settings
    cert_pem: bytes


def _settings(base: Settings, tag: str, spec: HubSpec, folder: Path, certs) -> Settings:
    vhost = f"{tag}-{spec.hub_id}"
    amqp = URL(spec.broker[0] if spec.broker else base.amqp_url)
    amqp_url = (
        f"{amqp.scheme}://{amqp.raw_user or 'guest'}:{amqp.raw_password or 'guest'}@"
        f"{amqp.host}:{amqp.port}/{quote(vhost, safe='')}"
    )
    cert = certs[spec.hub_id]
    return base.replace(
        hub_id=spec.hub_id,
        amqp_url=amqp_url,
        database_schema=f"{tag.replace('-', '_')}_{spec.hub_id.lower()}",
        broker_prefix=f"lienthong.{spec.hub_id.lower()}",
        blob_dir=str(folder / spec.hub_id / "blobs"),
        tls_cert=str(cert.cert),
        tls_key=str(cert.key),
        tls_client_ca=str(cert.ca),
        federation_bindings=spec.bindings,
        federation_management_url=spec.broker[1] if spec.broker else base.federation_management_url,
        host="127.0.0.1",
        port=0,
    )


async def wait_for_links(hubs: dict[str, RunningHub], timeout: float = 60.0) -> None:
    """Until every hub's federation links report ``running``."""
    deadline = time.monotonic() + timeout
    for running in hubs.values():
        federation = running.hub.federation
        want = len(await federation.store.peers())
        while True:
            links = await federation.peers.management.links()
            if sum(1 for link in links if link.get("status") == "running") >= want:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"federation links of {running.spec.hub_id}: {links}")
            await asyncio.sleep(0.3)


@contextlib.asynccontextmanager
async def federated_hubs(
    base: Settings, tag: str, specs: list[HubSpec], links: list[tuple[str, str]], folder: Path
) -> AsyncIterator[dict[str, RunningHub]]:
    """Start the hubs, register and distribute the directory, link them; clean up after."""
    certs = make_hub_certificates(folder / "pki", [s.hub_id for s in specs])
    all_settings = {s.hub_id: _settings(base, tag, s, folder, certs) for s in specs}
    hubs: dict[str, RunningHub] = {}
    async with contextlib.AsyncExitStack() as stack:
        for settings in all_settings.values():
            vhost = URL(settings.amqp_url).path[1:]
            management = Management(settings)
            await management.create_vhost(vhost)
            stack.push_async_callback(management.delete_vhost, vhost)
            stack.push_async_callback(db.drop_schema, settings)
        for spec in specs:
            hub, url = await stack.enter_async_context(running_hub(all_settings[spec.hub_id]))
            hubs[spec.hub_id] = RunningHub(
                spec, hub, url, all_settings[spec.hub_id], certs[spec.hub_id].cert.read_bytes()
            )
        directory = hubs[specs[0].hub_id]
        for spec in specs:
            await hubs[spec.hub_id].hub.registry.upsert(list(spec.agencies))
            if spec is not specs[0]:
                await directory.hub.registry.upsert(list(spec.agencies))
                await directory.hub.federation.store.set_homes(
                    [(a.code, spec.hub_id) for a in spec.agencies]
                )
        for a, b in links:
            for one, other in ((hubs[a], hubs[b]), (hubs[b], hubs[a])):
                await one.hub.federation.peers.add(
                    other.spec.hub_id, other.settings.amqp_url, other.url, other.cert_pem
                )
        for spec in specs[1:]:
            running = hubs[spec.hub_id]
            peer = next(b if a == spec.hub_id else a for a, b in links if spec.hub_id in (a, b))
            federation = running.hub.federation
            await pull_directory(
                spec.hub_id, federation.peers, peer, running.hub.registry, federation.store
            )
        await wait_for_links(hubs)
        yield hubs
