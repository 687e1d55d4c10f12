"""Three hubs in a triangle (national, H49, H41, each linked to the other two): a package from
H49 to H41 travels both directly and through the national hub; H41 keeps the first copy and
drops the other by digest, and the national hub's copy is not handed back to H49."""

from __future__ import annotations

import asyncio
import secrets
import time

import aiohttp

from adapters.client import HubClient
from exchange.auth import issue_credentials
from exchange.federation.sandbox import HubSpec, federated_hubs
from exchange.registry import Agency
from schemas import build_document
from tests.conftest import make_settings

MINISTRY = Agency("000.00.00.G22", "Văn phòng Chính phủ", None, "central")
COMMUNE = Agency("000.05.10.H49", "UBND phường Hồng Gai", "000.00.10.H49", "commune")
DISTRICT = Agency("000.00.10.H41", "UBND huyện X", None, "district")


async def _count(running, digest: bytes, event: str) -> int:
    return await running.hub.pool.fetchval(
        "SELECT count(*) FROM events WHERE digest = $1 AND event = $2", digest, event
    )


async def test_two_paths_deliver_once(tmp_path):
    base = make_settings(tmp_path, federation_witness_interval_seconds=3600)
    specs = [
        HubSpec("national", ("#",), (MINISTRY,)),
        HubSpec("H49", ("H49.#",), (COMMUNE,)),
        HubSpec("H41", ("H41.#",), (DISTRICT,)),
    ]
    links = [("national", "H49"), ("national", "H41"), ("H49", "H41")]
    tag = f"ltfed-{secrets.token_hex(3)}"
    async with federated_hubs(base, tag, specs, links, tmp_path) as hubs:
        p, n, q = hubs["H49"], hubs["national"], hubs["H41"]
        creds = await issue_credentials(p.hub.credentials, COMMUNE.code)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session:
            commune = HubClient(p.url, creds.client_id, creds.client_secret, session=session)
            sent = await commune.submit(
                build_document(
                    sender=COMMUNE.code,
                    recipients=[DISTRICT.code],
                    code_number=str(time.time_ns()),
                    code_notation="UBND",
                    subject="Hai đường",
                )
            )
        digest = bytes.fromhex(sent["digest"])
        deadline = time.monotonic() + 60
        # Both paths must have been tried: H41 took one copy and dropped the other.
        while q.hub.federation.intake.duplicates < 1 or not await _count(q, digest, "delivered"):
            assert time.monotonic() < deadline, "the second path never reached H41"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        assert await _count(q, digest, "delivered") == 1
        assert await _count(q, digest, "arrived") == 1
        assert await _count(n, digest, "arrived") == 1  # the national hub took it too
        assert await _count(p, digest, "arrived") == 0  # and did not hand it back to H49
        assert not await _count(p, digest, "rejected")
