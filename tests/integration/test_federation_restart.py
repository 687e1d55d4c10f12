"""The federation link survives a restart of either hub's broker: each hub runs on its own
private RabbitMQ node (never the shared one), which is stopped and started while packages
are sent; every package then arrives once."""

from __future__ import annotations

import asyncio
import secrets
import time

import aiohttp
import pytest

from adapters.client import HubClient
from exchange.auth import issue_credentials
from exchange.federation.sandbox import HubSpec, federated_hubs, wait_for_links
from exchange.registry import Agency
from schemas import build_document
from tests.conftest import make_settings
from tests.support.rabbitnode import private_rabbit

COMMUNE = Agency("000.05.10.H49", "UBND phường Hồng Gai", "000.00.10.H49", "commune")
DISTRICT = Agency("000.00.10.H41", "UBND huyện X", None, "district")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nodes")
    with private_rabbit(folder / "a") as a, private_rabbit(folder / "b") as b:
        yield a, b


async def _client(running, organ_id: str) -> HubClient:
    creds = await issue_credentials(running.hub.credentials, organ_id)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False))
    return HubClient(running.url, creds.client_id, creds.client_secret, session=session)


async def _delivered(running, digest: bytes) -> int:
    return await running.hub.pool.fetchval(
        "SELECT count(*) FROM events WHERE digest = $1 AND event = 'delivered'", digest
    )


async def _until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def test_the_link_survives_a_restart_of_either_broker(nodes, tmp_path):
    a, b = nodes
    base = make_settings(tmp_path, federation_witness_interval_seconds=3600)
    specs = [
        HubSpec("H49", ("H49.#",), (COMMUNE,), (a.amqp_url, a.management_url)),
        HubSpec("H41", ("H41.#",), (DISTRICT,), (b.amqp_url, b.management_url)),
    ]
    tag = f"ltfed-{secrets.token_hex(3)}"
    async with federated_hubs(base, tag, specs, [("H49", "H41")], tmp_path) as hubs:
        p, q = hubs["H49"], hubs["H41"]
        commune = await _client(p, COMMUNE.code)
        digests: list[bytes] = []

        async def send(n: int) -> None:
            for i in range(n):
                sent = await commune.submit(
                    build_document(
                        sender=COMMUNE.code,
                        recipients=[DISTRICT.code],
                        code_number=f"{len(digests)}-{i}-{time.time_ns()}",
                        code_notation="UBND",
                        subject="Qua khởi động lại",
                    )
                )
                digests.append(bytes.fromhex(sent["digest"]))

        async def all_once() -> bool:
            return all([await _delivered(q, d) >= 1 for d in digests])

        try:
            await send(2)
            await _until(all_once, 30, "the first packages")
            for node in (a, b):  # the sender's broker, then the receiver's
                await asyncio.to_thread(node.stop)
                await send(3)  # accepted meanwhile: into the outbox, or the upstream queue
                await asyncio.to_thread(node.start)
                await _until(all_once, 120, f"the packages sent while {node.name} was down")
                await wait_for_links(hubs, timeout=60)
            await asyncio.sleep(1.0)
            assert [await _delivered(q, d) for d in digests] == [1] * len(digests) == [1] * 8
        finally:
            await commune.session.close()
